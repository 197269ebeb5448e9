import { INestApplication, Type } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { AdminPathExceptionFilter } from './problem-details.filter';

export const ADMIN_DOCS_PATH = 'admin/docs';

/**
 * Wires what the admin API needs outside its controllers: the OpenAPI document for `modules`
 * at /admin/docs (JSON at /admin/docs-json), and problem+json for errors raised before a
 * controller runs (malformed JSON, wrong media type, unknown admin path). MCP transports keep
 * their own error handlers in their own Fastify scopes.
 */
export function setupAdminApi(app: INestApplication, modules: Type<unknown>[]): void {
  const config = new DocumentBuilder()
    .setTitle('Portico admin API')
    .setDescription(
      'Tenants, backends, tool policies, virtual servers, API keys, role bindings, sessions, audit',
    )
    .setVersion('1')
    .addBearerAuth({
      type: 'http',
      scheme: 'bearer',
      description: 'API key, tenant JWT or bootstrap token',
    })
    .build();
  const document = SwaggerModule.createDocument(app, config, { include: modules });
  SwaggerModule.setup(ADMIN_DOCS_PATH, app, document, {
    jsonDocumentUrl: `${ADMIN_DOCS_PATH}-json`,
    yamlDocumentUrl: `${ADMIN_DOCS_PATH}-yaml`,
  });
  app.useGlobalFilters(new AdminPathExceptionFilter(app.getHttpAdapter()));
}
