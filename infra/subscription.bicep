// The Event Grid subscription BlobCreated in `datasets` → DatasetArrived. Deployed AFTER the
// function app's code package (deploy.yml's `events` job, docs/runbook.md): Event Grid
// validates an AzureFunction endpoint when the subscription is created, so the function must
// already exist. Matches eventgrid.json, the local host's subscription.
param prefix string
@description('Container for events Event Grid could not deliver.')
param deadLetterContainer string = 'deadletters'

var storageName = toLower('st${prefix}fthub')

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageName
}

resource app 'Microsoft.Web/sites@2024-04-01' existing = {
  name: 'func-${prefix}-fthub'
}

resource topic 'Microsoft.EventGrid/systemTopics@2023-12-15-preview' existing = {
  name: 'evgt-${prefix}-storage'
}

resource datasets 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2023-12-15-preview' = {
  parent: topic
  name: 'datasets-blob-created'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${app.id}/functions/DatasetArrived'
        maxEventsPerBatch: 1
      }
    }
    filter: {
      includedEventTypes: [ 'Microsoft.Storage.BlobCreated' ]
      subjectBeginsWith: '/blobServices/default/containers/datasets/blobs/'
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 }
    deadLetterWithResourceIdentity: {
      identity: { type: 'SystemAssigned' }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: { resourceId: storage.id, blobContainerName: deadLetterContainer }
      }
    }
  }
}
