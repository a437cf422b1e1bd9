// Key Vault for customer-provided encryption keys of datasets; RBAC only.
param name string
param location string
param tags object = {}
param tenantId string = subscription().tenantId

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  //checkov:skip=CKV_AZURE_189:The Flex Consumption app reaches Key Vault without VNet integration; access is RBAC-only and the firewall denies by default apart from trusted Azure services.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenantId
    sku: { family: 'A', name: 'premium' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: { bypass: 'AzureServices', defaultAction: 'Deny' }
  }
}

output id string = vault.id
output uri string = vault.properties.vaultUri
