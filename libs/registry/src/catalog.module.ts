import { DynamicModule, Module } from '@nestjs/common';
import { ConfigService } from '@portico/config';
import { CatalogProvider, StaticCatalog } from '@portico/mcp-protocol';
import { createConformanceCatalog } from '@portico/testing';

/** The CatalogProvider port: the registry implements it per tenant; until then, fixtures. */
export const CATALOG_PROVIDER = Symbol('CATALOG_PROVIDER');

@Module({})
export class CatalogModule {
  /** Serves `catalog` when given (tests), else the fixture catalog named by FIXTURE_CATALOG. */
  static forRoot(catalog?: CatalogProvider): DynamicModule {
    return {
      module: CatalogModule,
      global: true,
      providers: [
        {
          provide: CATALOG_PROVIDER,
          inject: [ConfigService],
          useFactory: (config: ConfigService): CatalogProvider =>
            catalog ??
            (config.values.mcp.fixtureCatalog === 'conformance'
              ? createConformanceCatalog()
              : new StaticCatalog()),
        },
      ],
      exports: [CATALOG_PROVIDER],
    };
  }
}
