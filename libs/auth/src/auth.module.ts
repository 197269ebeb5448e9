import { Global, Module } from '@nestjs/common';
import { ApiKeyService } from './api-key/api-key.service';
import { AuthService } from './auth.service';
import { JwtVerifier } from './jwt/jwt-verifier';

/** Credentials → principals. Repositories come from the global PersistenceModule. */
@Global()
@Module({
  providers: [ApiKeyService, JwtVerifier, AuthService],
  exports: [ApiKeyService, JwtVerifier, AuthService],
})
export class AuthModule {}
