// One environment (dev, test or prod): a resource group in the environment's subscription and
// a Spoke in each of its regions (at least two, for BCDR).
targetScope = 'subscription'

param prefix string
@allowed([ 'dev', 'test', 'prod' ])
param environment string
@minLength(2)
param regions array
param functionPrincipalId string = ''
param location string = regions[0]

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-fthub-${environment}'
  location: location
  tags: { application: 'fthub', 'fthub-environment': environment }
}

module spokes 'spoke.bicep' = [for r in regions: {
  name: 'spoke-${environment}-${r}'
  scope: group
  params: { prefix: prefix, environment: environment, region: r, functionPrincipalId: functionPrincipalId }
}]
