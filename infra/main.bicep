// The Hub resource group: storage, Service Bus, the function app, Event Grid, the Hub Azure
// OpenAI account, Key Vault, monitoring and least-privilege roles.
// Deploy: az deployment group create -g rg-fthub-hub -f infra/main.bicep -p prefix=contosoft
targetScope = 'resourceGroup'

@description('Short lowercase prefix for resource names (3-11 characters).')
@minLength(3)
@maxLength(11)
param prefix string
param location string = resourceGroup().location
@description('Hub Azure OpenAI region (must support fine-tuning).')
param hubRegion string = 'swedencentral'
param approverPrincipalIds array = []
param dataScientistPrincipalIds array = []
@description('Subnet for private endpoints; empty for none.')
param privateEndpointSubnetId string = ''
param tags object = { application: 'fthub' }

var storageName = toLower('st${prefix}fthub')

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: { name: '${prefix}-fthub', location: location, tags: tags }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: storageName
    location: location
    tags: tags
    containers: [ 'datasets', 'reports', 'state', 'audit', 'deployments', 'deadletters' ]
    privateEndpointSubnetId: privateEndpointSubnetId
  }
}

module bus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  params: { name: 'sb-${prefix}-fthub', location: location, tags: tags }
}

module hub 'modules/openai.bicep' = {
  name: 'hub-openai'
  params: { name: '${prefix}-hub', location: hubRegion, tags: tags }
}

module vault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: { name: 'kv-${prefix}-fthub', location: location, tags: tags }
}

module app 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    name: 'func-${prefix}-fthub'
    location: location
    tags: tags
    storageAccountName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    serviceBusNamespace: bus.outputs.fullyQualifiedNamespace
    insightsConnectionString: monitoring.outputs.insightsConnectionString
  }
}

module grid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  params: {
    name: 'evgt-${prefix}-storage'
    location: location
    tags: tags
    storageAccountId: storage.outputs.id
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    storageAccountName: storage.outputs.name
    serviceBusName: bus.outputs.name
    openAiName: hub.outputs.name
    keyVaultName: 'kv-${prefix}-fthub'
    insightsName: 'appi-${prefix}-fthub'
    functionPrincipalId: app.outputs.principalId
    eventGridPrincipalId: grid.outputs.topicPrincipalId
    approverPrincipalIds: approverPrincipalIds
    dataScientistPrincipalIds: dataScientistPrincipalIds
  }
}

output functionAppName string = app.outputs.name
output functionPrincipalId string = app.outputs.principalId
output hubAccountId string = hub.outputs.id
output hubEndpoint string = hub.outputs.endpoint
output storageAccountName string = storage.outputs.name
output serviceBusNamespace string = bus.outputs.fullyQualifiedNamespace
output eventGridTopicName string = grid.outputs.topicName
