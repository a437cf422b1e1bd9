"""Uploads a submission with Microsoft's azure-storage-blob SDK: data files first, the
manifest last (it starts the run), as a data scientist's own tooling would.

usage: upload_submission.py CONNECTION_STRING PROJECT SUBMISSION DIR FILE...
"""
import pathlib
import sys

from azure.storage.blob import BlobServiceClient, ContentSettings


def main() -> None:
    conn, project, submission, directory, *files = sys.argv[1:]
    service = BlobServiceClient.from_connection_string(conn)
    container = service.get_container_client("datasets")
    for name in files:
        data = (pathlib.Path(directory) / name).read_bytes()
        kind = "application/json" if name.endswith(".json") else "application/jsonl"
        container.upload_blob(
            f"{project}/{submission}/{name}",
            data,
            overwrite=True,
            content_settings=ContentSettings(content_type=kind),
        )
        print(f"uploaded datasets/{project}/{submission}/{name} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
