import { Module } from '@nestjs/common';
import { ConfigService } from '@portico/config';
import { StaticCatalog } from '@portico/mcp-protocol';
import { createConformanceCatalog } from '@portico/testing';

/** The CatalogProvider port: the registry implements it per tenant; until then, fixtures. */
export const CATALOG_PROVIDER = Symbol('CATALOG_PROVIDER');

@Module({
  providers: [
    {
      provide: CATALOG_PROVIDER,
      inject: [ConfigService],
      useFactory: (config: ConfigService) =>
        config.values.mcp.fixtureCatalog === 'conformance'
          ? createConformanceCatalog()
          : new StaticCatalog(),
    },
  ],
  exports: [CATALOG_PROVIDER],
})
export class CatalogModule {}
