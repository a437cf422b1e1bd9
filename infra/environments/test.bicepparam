using '../environment.bicep'

param prefix = readEnvironmentVariable('FTHUB_PREFIX', 'contosoft')
param environment = 'test'
param regions = [
  'swedencentral'
  'northcentralus'
]
param functionPrincipalId = readEnvironmentVariable('FTHUB_FUNCTION_PRINCIPAL_ID', '')
