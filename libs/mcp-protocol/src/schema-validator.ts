/*
 * JSON Schema validation of tool arguments and structured output. Schemas are compiled once
 * (cached by object identity) with the dialect they declare: 2020-12 by default, draft-07 when
 * `$schema` says so. Schemas are never modified.
 */
import Ajv, { type ValidateFunction } from 'ajv';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';

export interface SchemaCheck {
  valid: boolean;
  /** Human-readable summary of the first few errors. */
  message?: string;
}

const DRAFT_07 = /^https?:\/\/json-schema\.org\/draft-0[67]\/schema#?$/;

export class SchemaValidator {
  private readonly ajv2020: Ajv2020;
  private readonly ajv07: Ajv;
  private readonly cache = new WeakMap<object, ValidateFunction | Error>();

  constructor() {
    const options = { strict: false, allErrors: false, validateFormats: true } as const;
    this.ajv2020 = new Ajv2020(options);
    this.ajv07 = new Ajv(options);
    addFormats(this.ajv2020);
    addFormats(this.ajv07);
  }

  /** Compiles eagerly; returns the error for an invalid schema instead of throwing. */
  compile(schema: object): ValidateFunction | Error {
    let fn = this.cache.get(schema);
    if (fn === undefined) {
      const dialect = (schema as { $schema?: unknown }).$schema;
      const ajv = typeof dialect === 'string' && DRAFT_07.test(dialect) ? this.ajv07 : this.ajv2020;
      try {
        fn = ajv.compile(schema);
      } catch (err) {
        fn = err instanceof Error ? err : new Error(String(err));
      }
      this.cache.set(schema, fn);
    }
    return fn;
  }

  check(schema: object, value: unknown): SchemaCheck {
    const fn = this.compile(schema);
    if (fn instanceof Error) {
      return { valid: false, message: `invalid schema: ${fn.message}` };
    }
    if (fn(value)) {
      return { valid: true };
    }
    const errors = (fn.errors ?? [])
      .slice(0, 5)
      .map((e) => `${e.instancePath || '(root)'} ${e.message ?? 'is invalid'}`);
    return { valid: false, message: errors.join('; ') };
  }
}
