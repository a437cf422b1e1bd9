// Event Grid system topic on the storage account. Its subscription to DatasetArrived is
// infra/subscription.bicep, deployed after the code package: Event Grid validates an
// AzureFunction endpoint when the subscription is created, so subscribing before the function
// exists fails a fresh estate's first deployment ("Destination endpoint not found").
param name string
param location string
param tags object = {}
param storageAccountId string

resource topic 'Microsoft.EventGrid/systemTopics@2023-12-15-preview' = {
  name: name
  location: location
  tags: tags
  identity: { type: 'SystemAssigned' }
  properties: {
    source: storageAccountId
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output topicPrincipalId string = topic.identity.principalId
output topicName string = topic.name

