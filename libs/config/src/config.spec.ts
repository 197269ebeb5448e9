import { ConfigError, loadConfig } from './config';

describe(loadConfig.name, () => {
  it('applies embedded defaults when nothing is set', () => {
    const config = loadConfig({});
    expect(config.http).toMatchObject({
      host: '127.0.0.1',
      port: 3000,
      maxBodyBytes: 4 * 1024 * 1024,
      http2: false,
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 30_000,
    });
    expect(config.http.tls).toBeUndefined();
    expect(config.mcp.path).toBe('/mcp');
    expect(config.mcp.allowedHosts).toEqual(['localhost', '127.0.0.1', '[::1]']);
    expect(config.mcp.secretGenerated).toBe(true);
    expect(config.mcp.secret.length).toBe(32);
  });

  it('coerces and uses given values', () => {
    const config = loadConfig({
      PORT: '8080',
      HOST: '0.0.0.0',
      MCP_PATH: '/gateway/mcp/',
      ALLOWED_ORIGINS: 'https://a.example, https://b.example',
      PORTICO_SECRET: 'x'.repeat(32),
    });
    expect(config.http.port).toBe(8080);
    expect(config.mcp.path).toBe('/gateway/mcp');
    expect(config.mcp.allowedOrigins).toEqual(['https://a.example', 'https://b.example']);
    // Bound beyond loopback without ALLOWED_HOSTS: no Host check rather than a broken one.
    expect(config.mcp.allowedHosts).toEqual([]);
    expect(config.mcp.secretGenerated).toBe(false);
  });

  it('stops with a message naming every invalid variable', () => {
    let error: unknown;
    try {
      loadConfig({ PORT: 'eighty', LOG_LEVEL: 'chatty', MAX_BODY_BYTES: '10' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/PORT="eighty"/);
    expect(message).toMatch(/LOG_LEVEL="chatty"/);
    expect(message).toMatch(/MAX_BODY_BYTES="10"/);
  });

  it('never prints the secret it rejects', () => {
    expect(() => loadConfig({ PORTICO_SECRET: 'too-short-secret' })).toThrow(
      /PORTICO_SECRET=\(hidden\)/,
    );
  });

  it('reads the metrics settings: on by default, token checked and never printed', () => {
    expect(loadConfig({}).metrics).toEqual({
      enabled: true,
      token: undefined,
      maxToolLabels: 200,
    });
    expect(
      loadConfig({
        METRICS_ENABLED: 'false',
        METRICS_TOKEN: 'a-token-of-16-ch',
        METRICS_MAX_TOOL_LABELS: '5',
      }).metrics,
    ).toEqual({ enabled: false, token: 'a-token-of-16-ch', maxToolLabels: 5 });
    expect(() => loadConfig({ METRICS_TOKEN: 'short-token' })).toThrow(/METRICS_TOKEN=\(hidden\)/);
    expect(() => loadConfig({ METRICS_MAX_TOOL_LABELS: '0' })).toThrow(/METRICS_MAX_TOOL_LABELS/);
  });

  it('reads the standard OTEL_* variables: tracing off by default, on with the OTLP exporter', () => {
    expect(loadConfig({}).tracing).toMatchObject({ enabled: false, protocol: 'http/protobuf' });
    const on = loadConfig({
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: 'edge-gateway',
    });
    expect(on.tracing).toEqual({
      enabled: true,
      protocol: 'http/json',
      serviceName: 'edge-gateway',
      endpoint: 'http://collector:4318/v1/traces',
    });
    // The signal-specific variables win, and OTEL_SDK_DISABLED wins over everything.
    expect(
      loadConfig({
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:9999/custom',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
      }).tracing,
    ).toMatchObject({ endpoint: 'http://traces:9999/custom', protocol: 'http/json' });
    expect(
      loadConfig({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'true' }).tracing.enabled,
    ).toBe(false);
  });

  it('refuses OTEL values it cannot honour, naming the variable', () => {
    expect(() => loadConfig({ OTEL_TRACES_EXPORTER: 'zipkin' })).toThrow(/OTEL_TRACES_EXPORTER/);
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow(
      /OTEL_EXPORTER_OTLP_PROTOCOL/,
    );
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT/,
    );
  });

  it('splits LOG_REDACT_PATHS', () => {
    expect(loadConfig({ LOG_REDACT_PATHS: ' a.b , *.ssn,, ' }).log.redactPaths).toEqual([
      'a.b',
      '*.ssn',
    ]);
  });

  it('reads TRUSTED_PROXIES and refuses entries that are not addresses or ranges', () => {
    expect(loadConfig({}).http.trustedProxies).toEqual([]);
    expect(
      loadConfig({ TRUSTED_PROXIES: '10.0.0.0/8, 127.0.0.1, ::1, fd00::/8, loopback' }).http
        .trustedProxies,
    ).toEqual(['10.0.0.0/8', '127.0.0.1', '::1', 'fd00::/8', 'loopback']);
    for (const bad of ['haproxy', '10.0.0.0/33', '10.0.0.1/8/1', '::1/129']) {
      expect(() => loadConfig({ TRUSTED_PROXIES: bad })).toThrow(/TRUSTED_PROXIES/);
    }
  });
});
