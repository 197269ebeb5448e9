/**
 * Attribute names Portico puts on spans: the OpenTelemetry semantic conventions for MCP,
 * JSON-RPC and GenAI tools where they exist (copied, as the conventions advise for incubating
 * names), `portico.*` for the gateway's own.
 */
export const SpanAttr = {
  mcpMethod: 'mcp.method.name',
  mcpProtocolVersion: 'mcp.protocol.version',
  mcpSessionId: 'mcp.session.id',
  mcpResourceUri: 'mcp.resource.uri',
  jsonRpcRequestId: 'jsonrpc.request.id',
  jsonRpcErrorCode: 'rpc.response.status_code',
  toolName: 'gen_ai.tool.name',
  promptName: 'gen_ai.prompt.name',
  operationName: 'gen_ai.operation.name',
  errorType: 'error.type',
  networkTransport: 'network.transport',
  httpMethod: 'http.request.method',
  httpRoute: 'http.route',
  httpStatus: 'http.response.status_code',
  tenant: 'portico.tenant',
  principal: 'portico.principal',
  backend: 'portico.backend',
  transport: 'portico.transport',
  queue: 'messaging.destination.name',
  messagingSystem: 'messaging.system',
  messageId: 'messaging.message.id',
} as const;
