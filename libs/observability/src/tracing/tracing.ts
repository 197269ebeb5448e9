import { hostname } from 'node:os';
import {
  type Context,
  context,
  type Span,
  type SpanOptions,
  SpanStatusCode,
  trace,
  type Tracer,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  CompositePropagator,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from '@opentelemetry/core';
import { OTLPTraceExporter as OtlpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import {
  defaultResource,
  detectResources,
  envDetector,
  resourceFromAttributes,
} from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { carrierGetter, carrierSetter } from './trace-carrier';
import { SpanAttr } from './span-names';

export interface TracingOptions {
  readonly enabled: boolean;
  readonly protocol: 'http/protobuf' | 'http/json';
  readonly serviceName: string;
  readonly serviceVersion: string;
  /** The OTLP traces URL (else the exporter's default and OTEL_EXPORTER_OTLP_* variables). */
  readonly endpoint?: string;
  /** Replaces the OTLP exporter (tests); the OTEL_EXPORTER_OTLP_* variables configure OTLP. */
  readonly exporter?: SpanExporter;
}

const propagator = new CompositePropagator({
  propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
});

let contextManagerInstalled = false;

/** Spans need an async context that follows awaits: installed once per process. */
function installContextManager(): void {
  if (contextManagerInstalled) {
    return;
  }
  contextManagerInstalled = true;
  // False when one is already registered (by an embedding host): that one is used.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
}

/**
 * OpenTelemetry tracing of one application: its own provider and tracer (not the global ones,
 * so several applications in one process keep their spans apart), the W3C trace-context and
 * baggage propagators, batch export over OTLP. Disabled, every method is a cheap no-op and
 * callers on hot paths test `enabled` first.
 */
export class Tracing {
  readonly enabled: boolean;
  readonly tracer: Tracer;
  private readonly provider?: BasicTracerProvider;

  constructor(options: TracingOptions) {
    this.enabled = options.enabled;
    if (!options.enabled) {
      this.tracer = trace.getTracer('portico-disabled');
      return;
    }
    installContextManager();
    const exporter =
      options.exporter ??
      (options.protocol === 'http/json'
        ? new OtlpJsonExporter({ url: options.endpoint })
        : new OtlpProtobufExporter({ url: options.endpoint }));
    const resource = defaultResource()
      .merge(
        resourceFromAttributes({
          'service.name': options.serviceName,
          'service.version': options.serviceVersion,
          'service.instance.id': `${hostname()}:${process.pid}`,
        }),
      )
      // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the defaults above.
      .merge(detectResources({ detectors: [envDetector] }));
    this.provider = new BasicTracerProvider({
      resource,
      // The sampler comes from OTEL_TRACES_SAMPLER(_ARG), the batch sizes from OTEL_BSP_*.
      spanProcessors: [new BatchSpanProcessor(exporter)],
    });
    this.tracer = this.provider.getTracer('portico', options.serviceVersion);
  }

  /** The context a carrier (HTTP headers, a request's `_meta`) continues, on top of `base`. */
  extract(carrier: Record<string, unknown>, base: Context = context.active()): Context {
    return propagator.extract(base, carrier, carrierGetter);
  }

  /** Writes the trace context of `ctx` (traceparent, tracestate, baggage) into `carrier`. */
  inject(carrier: Record<string, string>, ctx: Context = context.active()): Record<string, string> {
    if (this.enabled) {
      propagator.inject(ctx, carrier, carrierSetter);
    }
    return carrier;
  }

  /**
   * The active context when children may be recorded under it, or undefined when the active
   * span belongs to an unsampled trace: then no child span is started at all (under a
   * parent-based sampler it would not be recorded, and starting one still costs ids,
   * attributes and a context switch per span). Outside any span it is the (root) context.
   */
  current(): Context | undefined {
    if (!this.enabled) {
      return undefined;
    }
    const active = context.active();
    const span = trace.getSpan(active);
    return span === undefined || span.isRecording() ? active : undefined;
  }

  /** A span under `parent` (default: the active context), not made active. */
  start(name: string, options: SpanOptions, parent: Context = context.active()): Span {
    return this.tracer.startSpan(name, options, parent);
  }

  /** Runs `fn` with `span` as the active span. */
  within<T>(span: Span, fn: () => T): T {
    return context.with(trace.setSpan(context.active(), span), fn);
  }

  /**
   * Runs `fn` in a new active child span that ends when it settles; a throw marks the span
   * failed. Disabled, or inside an unsampled trace: just `fn()`.
   */
  async span<T>(
    name: string,
    options: SpanOptions,
    fn: (span?: Span) => Promise<T> | T,
  ): Promise<T> {
    const parent = this.current();
    if (parent === undefined) {
      return fn();
    }
    const span = this.start(name, options, parent);
    try {
      return await context.with(trace.setSpan(parent, span), () => fn(span));
    } catch (err) {
      failSpan(span, err);
      throw err;
    } finally {
      span.end();
    }
  }

  /** The active trace id, for log lines; undefined outside a sampled span. */
  traceId(): string | undefined {
    if (!this.enabled) {
      return undefined;
    }
    const span = trace.getSpan(context.active());
    const ctx = span?.spanContext();
    return ctx && trace.isSpanContextValid(ctx) ? ctx.traceId : undefined;
  }

  /** Exports what is buffered (graceful shutdown). */
  async flush(): Promise<void> {
    await this.provider?.forceFlush();
  }

  async shutdown(): Promise<void> {
    await this.provider?.shutdown();
  }
}

/** Marks a span failed with the error's type and message (never its stack or arguments). */
export function failSpan(span: Span, err: unknown, type?: string): void {
  const message = err instanceof Error ? err.message : String(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message: message.slice(0, 500) });
  span.setAttribute(
    SpanAttr.errorType,
    type ?? (err instanceof Error ? err.constructor.name : typeof err),
  );
}
