import { ValidateBy, ValidationOptions } from 'class-validator';
import {
  exposureListProblems,
  ExposureKind,
  serverNameProblem,
} from '../../virtual-server/virtual-server-exposure';

/** A virtual server name: the tenant slug rules, minus the names routed under /mcp/{tenant}. */
export function IsServerName(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isServerName',
      validator: {
        validate: (value: unknown) =>
          typeof value === 'string' && serverNameProblem(value) === undefined,
        defaultMessage: (args) =>
          typeof args?.value === 'string'
            ? `name ${serverNameProblem(args.value) ?? 'is invalid'}`
            : 'name must be a string',
      },
    },
    options,
  );
}

/**
 * One of a virtual server's lists (`tools`, `prompts`, `resources`, `resourceTemplates`):
 * exact entries or `*` globs, the same rules as portico.yaml. The message names every bad
 * entry by its index.
 */
export function IsExposureList(kind: ExposureKind, options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isExposureList',
      validator: {
        validate: (value: unknown) => exposureListProblems(kind, value).length === 0,
        defaultMessage: (args) =>
          exposureListProblems(kind, args?.value)
            .map((problem) => `${problem.path} ${problem.message}`)
            .join('; '),
      },
    },
    options,
  );
}
