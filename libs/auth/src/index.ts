export * from './api-key/api-key.service';
export * from './auth.errors';
export * from './auth.module';
export * from './auth.service';
export * from './jwt/jwt-verifier';
export * from './principal';
export * from './roles';
