// One Spoke: an Azure OpenAI account in a region of an environment's subscription, and the
// role the function identity needs to create deployments in it (deploying across
// subscriptions needs access to both the Hub and the Spoke).
targetScope = 'resourceGroup'

param prefix string
param environment string
param region string
@description('Principal id of the function app identity (main.bicep output).')
param functionPrincipalId string
param tags object = { application: 'fthub' }

module account 'modules/openai.bicep' = {
  name: 'spoke-${environment}-${region}'
  params: { name: '${prefix}-${environment}-${region}', location: region, tags: union(tags, { 'fthub-environment': environment }) }
}

resource spokeAccount 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: '${prefix}-${environment}-${region}'
}

resource deployer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(functionPrincipalId)) {
  name: guid(resourceGroup().id, prefix, environment, region, functionPrincipalId)
  scope: spokeAccount
  properties: {
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'a001fd3d-188f-4b5d-821b-7da978bf7442')
  }
  dependsOn: [ account ]
}

output accountId string = account.outputs.id
output endpoint string = account.outputs.endpoint
