import { ValidateBy, ValidationOptions } from 'class-validator';
import { backendSettingsProblems } from '@portico/queue';

/**
 * A backend's `settings` object: its execution keys (`executor`, `timeoutMs`, `retry`,
 * `tools`) against the one schema portico.yaml uses too; every problem named with its path.
 */
export function IsBackendSettings(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isBackendSettings',
      validator: {
        validate: (value: unknown) => backendSettingsProblems(value).length === 0,
        defaultMessage: (args) => {
          const problems = backendSettingsProblems(args?.value);
          if (problems.length === 0) {
            return '$property must be an object';
          }
          return problems
            .map(
              (p) =>
                `${args?.property ?? 'settings'}${p.path === '' ? '' : p.path.startsWith('[') ? p.path : `.${p.path}`} ${p.message}`,
            )
            .join('; ');
        },
      },
    },
    options,
  );
}
