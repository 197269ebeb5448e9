import { hostname } from 'node:os';
import {
  type Context,
  ROOT_CONTEXT,
  type Span,
  type SpanOptions,
  SpanStatusCode,
  trace as otelTrace,
  type Tracer,
} from '@opentelemetry/api';
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

/**
 * OpenTelemetry tracing of one application: its own provider and tracer (not the global ones,
 * so several applications in one process keep their spans apart), the W3C trace-context and
 * baggage propagators, batch export over OTLP. Disabled, every method is a cheap no-op and
 * callers on hot paths test `enabled` first.
 *
 * No context manager is installed: the trace context travels explicitly (RequestIo.trace,
 * RequestContext.trace, CatalogScope.trace, job data), never through async-local storage.
 * On Node 20 an AsyncLocalStorage context manager enables promise hooks for the whole
 * process once used, which cost every request about as much as serving it, traced or not.
 */
export class Tracing {
  readonly enabled: boolean;
  readonly tracer: Tracer;
  private readonly provider?: BasicTracerProvider;

  constructor(options: TracingOptions) {
    this.enabled = options.enabled;
    if (!options.enabled) {
      this.tracer = otelTrace.getTracer('portico-disabled');
      return;
    }
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
  extract(carrier: Record<string, unknown>, base: Context = ROOT_CONTEXT): Context {
    return propagator.extract(base, carrier, carrierGetter);
  }

  /** Writes the trace context of `trace` (traceparent, tracestate, baggage) into `carrier`. */
  inject(carrier: Record<string, string>, trace: unknown): Record<string, string> {
    if (this.enabled && trace !== undefined) {
      propagator.inject(trace as Context, carrier, carrierSetter);
    }
    return carrier;
  }

  /**
   * `trace` (a request's explicit trace context) when children may be recorded under it, or
   * undefined: tracing off, no context, or a span of an unsampled trace. Then no child span is
   * started at all: under a parent-based sampler it would not be recorded, and starting one
   * still costs ids and attributes.
   */
  parent(trace: unknown): Context | undefined {
    if (!this.enabled || trace === undefined) {
      return undefined;
    }
    const span = otelTrace.getSpan(trace as Context);
    return span === undefined || span.isRecording() ? (trace as Context) : undefined;
  }

  /**
   * A span under `parent` (default: a new trace), not made active. Its attributes are set
   * only when it is recorded: the SDK copies and validates the attributes of every span it
   * starts before the sampler decides, ~4 µs a request for spans mostly dropped at a low
   * sampling ratio. (The standard samplers do not look at attributes.)
   */
  start(name: string, options: SpanOptions, parent: Context = ROOT_CONTEXT): Span {
    const { attributes, ...rest } = options;
    const span = this.tracer.startSpan(name, rest, parent);
    if (attributes !== undefined && span.isRecording()) {
      span.setAttributes(attributes);
    }
    return span;
  }

  /** `parent` with `span` as its current span: the trace context of work inside `span`. */
  under(span: Span, parent: Context = ROOT_CONTEXT): Context {
    return otelTrace.setSpan(parent, span);
  }

  /**
   * Runs `fn` in a child span of `trace` that ends when it settles, passing `fn` the child's
   * trace context; a throw marks the span failed. Tracing off, no context, or an unsampled
   * trace: just `fn(trace)`.
   */
  async span<T>(
    name: string,
    options: SpanOptions,
    trace: unknown,
    fn: (trace: unknown, span?: Span) => Promise<T> | T,
  ): Promise<T> {
    const parent = this.parent(trace);
    if (parent === undefined) {
      return fn(trace);
    }
    const span = this.start(name, options, parent);
    try {
      return await fn(otelTrace.setSpan(parent, span), span);
    } catch (err) {
      failSpan(span, err);
      throw err;
    } finally {
      span.end();
    }
  }

  /** The trace id of `trace`, for log lines; undefined without a valid span in it. */
  traceId(trace: unknown): string | undefined {
    if (!this.enabled || trace === undefined) {
      return undefined;
    }
    const ctx = otelTrace.getSpan(trace as Context)?.spanContext();
    return ctx && otelTrace.isSpanContextValid(ctx) ? ctx.traceId : undefined;
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
