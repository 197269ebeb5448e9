import { isAbsolute } from 'node:path';
import type { BackendEntity } from '@portico/persistence';

/** A backend's target or settings that cannot be used as given; the message names the field. */
export class BackendSettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackendSettingsError';
  }
}

/** How an `mcp-stdio` backend's process is started. */
export interface StdioLaunch {
  readonly command: string;
  /** The target's own arguments, then settings.args. */
  readonly args: readonly string[];
  /** Absolute working directory; the gateway's when absent. */
  readonly cwd?: string;
  /** settings.env: non-secret variables (credentials are added at spawn time). */
  readonly env: Readonly<Record<string, string>>;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The process of an `mcp-stdio` backend: target is a command line (split like a POSIX shell
 * would split words, but never run by one: no expansion, no pipes), settings `args` (strings),
 * `cwd` (absolute path) and `env` (string values).
 */
export function stdioLaunch(backend: Pick<BackendEntity, 'target' | 'settings'>): StdioLaunch {
  const words = splitCommandLine(backend.target);
  if (words.length === 0) {
    throw new BackendSettingsError('target must be a non-empty command line');
  }
  const [command, ...targetArgs] = words;
  const raw = backend.settings ?? {};

  const args = raw.args ?? [];
  if (!Array.isArray(args) || !args.every((arg) => typeof arg === 'string')) {
    throw new BackendSettingsError('settings.args must be an array of strings');
  }
  for (const arg of [command, ...targetArgs, ...args]) {
    if (arg.includes('\0')) {
      throw new BackendSettingsError('the command line must not contain NUL characters');
    }
  }

  const cwd = raw.cwd;
  if (cwd !== undefined && (typeof cwd !== 'string' || !isAbsolute(cwd) || cwd.includes('\0'))) {
    throw new BackendSettingsError('settings.cwd must be an absolute path');
  }

  const env = raw.env ?? {};
  if (typeof env !== 'object' || env === null || Array.isArray(env)) {
    throw new BackendSettingsError('settings.env must be an object of string values');
  }
  for (const [name, value] of Object.entries(env)) {
    if (!ENV_NAME.test(name)) {
      throw new BackendSettingsError(
        `settings.env: ${JSON.stringify(name.slice(0, 64))} is not a valid variable name`,
      );
    }
    if (typeof value !== 'string' || value.includes('\0')) {
      throw new BackendSettingsError(`settings.env.${name} must be a string without NUL`);
    }
  }

  return {
    command,
    args: [...targetArgs, ...args],
    ...(cwd !== undefined && { cwd }),
    env: env as Record<string, string>,
  };
}

/** When the child of an `mcp-stdio` backend runs, and how it is restarted after a crash. */
export interface StdioSupervision {
  /**
   * `on-demand`: started when a request needs it, stopped after idleTimeoutMs without work.
   * `eager`: kept running; restarted after an unexpected exit.
   */
  readonly start: 'on-demand' | 'eager';
  /** on-demand only: idle time before the child is stopped; 0 = never stopped. */
  readonly idleTimeoutMs: number;
  /** Wait before the first restart after a crash; doubled per consecutive crash. */
  readonly restartInitialMs: number;
  /** Longest wait between restarts. */
  readonly restartMaxMs: number;
}

export const STDIO_SUPERVISION_DEFAULTS: StdioSupervision = {
  start: 'on-demand',
  idleTimeoutMs: 300_000,
  restartInitialMs: 500,
  restartMaxMs: 30_000,
};

/** The longest delay a timer takes (setTimeout's limit, about 24.8 days). */
export const MAX_DELAY_MS = 2_147_483_647;

/**
 * How the child of an `mcp-stdio` backend is supervised: settings `start`, `idleTimeoutMs`,
 * `restartInitialMs` and `restartMaxMs`, with defaults (STDIO_SUPERVISION_DEFAULTS).
 */
export function stdioSupervision(backend: Pick<BackendEntity, 'settings'>): StdioSupervision {
  const raw = backend.settings ?? {};
  const start = raw.start ?? STDIO_SUPERVISION_DEFAULTS.start;
  if (start !== 'on-demand' && start !== 'eager') {
    throw new BackendSettingsError('settings.start must be "on-demand" or "eager"');
  }
  const millis = (key: keyof StdioSupervision, min: number): number => {
    const value = raw[key] ?? STDIO_SUPERVISION_DEFAULTS[key];
    if (
      typeof value !== 'number' ||
      !Number.isInteger(value) ||
      value < min ||
      value > MAX_DELAY_MS
    ) {
      throw new BackendSettingsError(
        `settings.${key} must be an integer number of milliseconds from ${min} to ${MAX_DELAY_MS}`,
      );
    }
    return value;
  };
  const restartInitialMs = millis('restartInitialMs', 1);
  const restartMaxMs = millis('restartMaxMs', 1);
  if (restartMaxMs < restartInitialMs) {
    throw new BackendSettingsError('settings.restartMaxMs must not be less than restartInitialMs');
  }
  return { start, idleTimeoutMs: millis('idleTimeoutMs', 0), restartInitialMs, restartMaxMs };
}

/**
 * Credentials of an `mcp-stdio` backend as environment variables. Errors name the variable,
 * never its value.
 */
export function credentialEnvironment(credentials: Record<string, string>): Record<string, string> {
  for (const [name, value] of Object.entries(credentials)) {
    if (!ENV_NAME.test(name)) {
      throw new BackendSettingsError(
        'credentials of an mcp-stdio backend must be named like environment variables',
      );
    }
    if (value.includes('\0')) {
      throw new BackendSettingsError(`credential ${name} must not contain NUL characters`);
    }
  }
  return credentials;
}

/**
 * Splits a command line into words: blanks separate words; 'single quotes' keep everything;
 * "double quotes" keep everything but `\"` and `\\`; a backslash outside quotes escapes the
 * next character. Nothing is expanded.
 */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote === "'") {
      if (ch === "'") {
        quote = undefined;
      } else {
        word += ch;
      }
      continue;
    }
    if (quote === '"') {
      if (ch === '"') {
        quote = undefined;
      } else if (ch === '\\' && (line[i + 1] === '"' || line[i + 1] === '\\')) {
        word += line[++i];
      } else {
        word += ch;
      }
      continue;
    }
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') {
      if (inWord) {
        words.push(word);
        word = '';
        inWord = false;
      }
      continue;
    }
    inWord = true;
    if (ch === "'" || ch === '"') {
      quote = ch;
    } else if (ch === '\\') {
      if (i + 1 >= line.length) {
        throw new BackendSettingsError('target ends with an unfinished escape');
      }
      word += line[++i];
    } else {
      word += ch;
    }
  }
  if (quote !== undefined) {
    throw new BackendSettingsError(`target has an unterminated ${quote} quote`);
  }
  if (inWord) {
    words.push(word);
  }
  return words;
}
