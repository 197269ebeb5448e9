export * from './gateway-metrics.service';
export * from './metrics.controller';
export * from './metrics.module';
