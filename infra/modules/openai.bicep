// An Azure OpenAI account (the Hub, or a Spoke), Entra only.
param name string
param location string
param tags object = {}
@description('Disable public network access once private endpoints are in place.')
param publicNetworkAccess string = 'Enabled'

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  //checkov:skip=CKV_AZURE_134:Spokes serve applications and the keepalive over Entra-authenticated public endpoints (local auth is disabled); estates with private networking set publicNetworkAccess to Disabled.
  name: name
  location: location
  tags: tags
  kind: 'OpenAI'
  sku: { name: 'S0' }
  identity: { type: 'SystemAssigned' }
  properties: {
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: publicNetworkAccess
    networkAcls: { defaultAction: publicNetworkAccess == 'Enabled' ? 'Allow' : 'Deny' }
  }
}

output id string = account.id
output name string = account.name
output endpoint string = account.properties.endpoint
