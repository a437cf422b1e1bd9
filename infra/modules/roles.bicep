// Least-privilege role assignments in the Hub resource group.
param storageAccountName string
param serviceBusName string
param openAiName string
param keyVaultName string
param insightsName string
param functionPrincipalId string
param eventGridPrincipalId string
@description('Principals allowed to publish approvals (Service Bus Data Sender on `approvals` only).')
param approverPrincipalIds array = []
@description('Principals allowed to drop datasets (Storage Blob Data Contributor on `datasets` only).')
param dataScientistPrincipalIds array = []

var roles = {
  blobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  queueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  serviceBusSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  serviceBusReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  openAiContributor: 'a001fd3d-188f-4b5d-821b-7da978bf7442'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  metricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}
var receiveQueues = [ 'intake', 'training-completed', 'evaluation-completed', 'approvals' ]
var sendQueues = [ 'intake', 'training-completed', 'evaluation-completed' ]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}
resource datasetsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  name: '${storageAccountName}/default/datasets'
}
resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
  name: serviceBusName
}
resource receiveQueue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' existing = [for q in receiveQueues: {
  parent: namespace
  name: q
}]
resource sendQueue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' existing = [for q in sendQueues: {
  parent: namespace
  name: q
}]
resource approvals 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' existing = {
  parent: namespace
  name: 'approvals'
}
resource notifications 'Microsoft.ServiceBus/namespaces/topics@2022-10-01-preview' existing = {
  parent: namespace
  name: 'notifications'
}
resource hub 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: openAiName
}
resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}
resource insights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: insightsName
}

// The function identity: data in storage (and the host's queues), its queues and topic,
// fine-tuning and deployments on the Hub, dataset keys, telemetry.
resource fnBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionPrincipalId, roles.blobDataContributor)
  scope: storage
  properties: { principalId: functionPrincipalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataContributor) }
}
resource fnQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  // The Functions host keeps its own bookkeeping queues in AzureWebJobsStorage.
  name: guid(storage.id, functionPrincipalId, roles.queueDataContributor)
  scope: storage
  properties: { principalId: functionPrincipalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.queueDataContributor) }
}
resource fnReceive 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (q, i) in receiveQueues: {
  name: guid(namespace.id, q, functionPrincipalId, roles.serviceBusReceiver)
  scope: receiveQueue[i]
  properties: { principalId: functionPrincipalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusReceiver) }
}]
resource fnSend 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (q, i) in sendQueues: {
  name: guid(namespace.id, q, functionPrincipalId, roles.serviceBusSender)
  scope: sendQueue[i]
  properties: { principalId: functionPrincipalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusSender) }
}]
resource fnNotify 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(notifications.id, functionPrincipalId, roles.serviceBusSender)
  scope: notifications
  properties: { principalId: functionPrincipalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusSender) }
}
resource fnHub 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hub.id, functionPrincipalId, roles.openAiContributor)
  scope: hub
  properties: { principalId: functionPrincipalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.openAiContributor) }
}
resource fnVault 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, functionPrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: { principalId: functionPrincipalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser) }
}
resource fnInsights 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, functionPrincipalId, roles.metricsPublisher)
  scope: insights
  properties: { principalId: functionPrincipalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.metricsPublisher) }
}

// Event Grid writes undeliverable events to the dead-letter container.
resource gridDeadLetter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, eventGridPrincipalId, roles.blobDataContributor)
  scope: storage
  properties: { principalId: eventGridPrincipalId, principalType: 'ServicePrincipal', roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataContributor) }
}

// Approvers may only send to `approvals`; data scientists may only write `datasets`.
resource approverSend 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for p in approverPrincipalIds: {
  name: guid(approvals.id, p, roles.serviceBusSender)
  scope: approvals
  properties: { principalId: p, roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusSender) }
}]
resource scientistBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for p in dataScientistPrincipalIds: {
  name: guid(datasetsContainer.id, p, roles.blobDataContributor)
  scope: datasetsContainer
  properties: { principalId: p, roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataContributor) }
}]
