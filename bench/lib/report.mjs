// Aggregation and printing. Rounds are summarised by their median: on a noisy
// 2-core machine a single slow or fast round should not move the headline.

export const TARGETS_GOALS = {
  engineOpsPerSec: 1_000_000,
  vsBareFastify: 0.6,
  vsSdk: 6,
  p99Ms: 10,
};

export function median(values) {
  const xs = values.filter((v) => typeof v === 'number').sort((a, b) => a - b);
  if (!xs.length) {
    return null;
  }
  const mid = xs.length >> 1;
  return xs.length % 2 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
}

const roundOrNull = (n) => (n == null ? null : Math.round(n));
const sum = (values) => values.reduce((acc, v) => acc + (v ?? 0), 0);

/** Collapse a target's rounds into the figures the report shows. */
export function summarize(rounds) {
  const rps = rounds.map((r) => r.reqPerSec);
  return {
    reqPerSec: Math.round(median(rps)),
    minReqPerSec: Math.min(...rps),
    maxReqPerSec: Math.max(...rps),
    p50Ms: median(rounds.map((r) => r.latencyMs.p50)),
    p99Ms: median(rounds.map((r) => r.latencyMs.p99)),
    non2xx: sum(rounds.map((r) => r.non2xx)),
    errors: sum(rounds.map((r) => r.errors)),
    timeouts: sum(rounds.map((r) => r.timeouts)),
    invalid: sum(rounds.map((r) => r.invalid)),
    serverCpuPercent: roundOrNull(median(rounds.map((r) => r.cpuPercent.server))),
    loaderCpuPercent: roundOrNull(median(rounds.map((r) => r.cpuPercent.loader))),
  };
}

export const isClean = (s) => s.non2xx + s.errors + s.timeouts + s.invalid === 0;

const int = (n) => (n == null ? '-' : Math.round(n).toLocaleString('en-US'));
const fixed = (n, digits = 2) => (n == null ? '-' : n.toFixed(digits));
const pctStr = (n) => (n == null ? '-' : `${n}%`);

function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  // First column left-aligned (names), the rest right-aligned (numbers).
  const line = (cells) =>
    cells
      .map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i])))
      .join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function printEngine(engine) {
  console.log('\n== Engine microbenchmark (parse + dispatch of tools/call, one core) ==');
  if (engine.error) {
    console.log(`  FAILED: ${engine.error}`);
    return;
  }
  const goal = TARGETS_GOALS.engineOpsPerSec;
  const verdict = engine.opsPerSec >= goal ? 'PASS' : 'FAIL';
  console.log(`  engine:  ${engine.name}${engine.async ? ' (async dispatch)' : ''}`);
  console.log(
    `  ${int(engine.opsPerSec)} ops/s (median of ${engine.batches} batches, ` +
      `range ${int(engine.minOpsPerSec)}–${int(engine.maxOpsPerSec)})  ` +
      `target ≥ ${int(goal)}  ${verdict}${engine.placeholder ? ' — PLACEHOLDER, not Portico' : ''}`,
  );
  if (engine.parseOnlyOpsPerSec) {
    console.log(
      `  of which: JSON.parse + classify alone ${int(engine.parseOnlyOpsPerSec)} ops/s; ` +
        `dispatch of a parsed request alone ${int(engine.dispatchOnlyOpsPerSec)} ops/s`,
    );
  }
}

export function printHttp(results, config) {
  console.log(
    `\n== tools/call over Streamable HTTP: ${config.connections} connections, ` +
      `${config.rounds} × ${config.durationSec}s rounds (median), warm-up ${config.warmupSec}s ==`,
  );
  const rows = [];
  for (const r of results) {
    const name = `${r.key}  ${r.label}`;
    if (!r.summary) {
      rows.push([name, 'skipped', '', '', '', '', '', '', '', '']);
      continue;
    }
    const s = r.summary;
    rows.push([
      name,
      int(s.reqPerSec),
      `${int(s.minReqPerSec)}–${int(s.maxReqPerSec)}`,
      fixed(s.p50Ms),
      fixed(s.p99Ms),
      s.non2xx,
      s.errors + s.timeouts,
      r.verified ? s.invalid : 'n/a',
      pctStr(s.serverCpuPercent),
      pctStr(s.loaderCpuPercent),
    ]);
  }
  console.log(
    table(
      [
        'target',
        'req/s',
        'range',
        'p50 ms',
        'p99 ms',
        'non-2xx',
        'errors',
        'invalid',
        'srv cpu',
        'gen cpu',
      ],
      rows,
    ),
  );

  for (const r of results) {
    if (r.skipped) {
      console.log(`  ${r.key} skipped: ${r.skipped}`);
    } else if (r.summary && !isClean(r.summary)) {
      console.log(`  ${r.key} had failed requests — its figures are not valid.`);
      if (r.firstInvalid) {
        console.log(`     first invalid body (${r.firstInvalid.reason}): ${r.firstInvalid.body}`);
      }
    }
    if (r.postCheck) {
      console.log(`  ${r.key} post-load check failed: ${r.postCheck}`);
    }
  }
  // With 2 cores the load generator and the server each need one. When the
  // generator is pegged it may be what limits throughput, so the server could
  // be faster than shown — which flatters ratios with that target as divisor.
  const noisy = results
    .filter((r) => r.summary && r.rounds.length > 1)
    .filter((r) => (r.summary.maxReqPerSec - r.summary.minReqPerSec) / r.summary.reqPerSec > 0.2)
    .map((r) => r.key);
  if (noisy.length) {
    console.log(
      `  note: rounds of ${noisy.join(', ')} spread by > 20% of the median — a noisy machine; ` +
        'compare ratios from one run, or raise BENCH_ROUNDS.',
    );
  }
  const pegged = results.filter((r) => r.summary?.loaderCpuPercent >= 90).map((r) => r.key);
  if (pegged.length) {
    console.log(
      `  note: the load generator was ≥ 90% CPU during ${pegged.join(', ')}; ` +
        'those req/s may be limited by the generator rather than the server.',
    );
  }
}

/** Ratios and latency checks against the project's goals. */
export function computeChecks(results) {
  const by = Object.fromEntries(results.filter((r) => r.summary).map((r) => [r.key, r]));
  // A figure from a run with failed requests proves nothing either way.
  const trusted = (...keys) => keys.every((k) => isClean(by[k].summary) && !by[k].postCheck);
  const checks = [];
  const ratio = (num, den, goal, what) => {
    if (!by[num] || !by[den]) {
      return;
    }
    const value = by[num].summary.reqPerSec / by[den].summary.reqPerSec;
    checks.push({
      what: `${what}: ${by[num].label} (${num}) / ${by[den].label} (${den})`,
      value: Number(value.toFixed(2)),
      unit: '×',
      goal: `≥ ${goal}`,
      pass: value >= goal,
      valid: trusted(num, den),
    });
  };
  for (const p of ['d', 'e']) {
    ratio(p, 'a', TARGETS_GOALS.vsBareFastify, 'throughput');
    ratio(p, 'b', TARGETS_GOALS.vsSdk, 'throughput');
    ratio(p, 'c', TARGETS_GOALS.vsSdk, 'throughput');
    if (by[p]) {
      checks.push({
        what: `p99 latency: ${by[p].label} (${p})`,
        value: by[p].summary.p99Ms,
        unit: ' ms',
        goal: `≤ ${TARGETS_GOALS.p99Ms} ms`,
        pass: by[p].summary.p99Ms <= TARGETS_GOALS.p99Ms,
        valid: trusted(p),
      });
    }
  }
  return checks;
}

export function printChecks(checks, results) {
  console.log('\n== Portico vs goals ==');
  if (!checks.length) {
    console.log('  Portico was not measured, so there is nothing to compare yet.');
  }
  if (checks.some((c) => !c.valid)) {
    console.log('  N/A = a target in the comparison had failed requests.');
  }
  for (const c of checks) {
    const verdict = !c.valid ? 'N/A ' : c.pass ? 'PASS' : 'FAIL';
    console.log(`  ${verdict}  ${c.what} = ${c.value}${c.unit}  (goal ${c.goal})`);
  }
  // Context: the headroom the baselines leave. Portico needs ≥ 0.6 × bare and
  // ≥ 6 × SDK, which is only possible if bare/SDK is ≥ 10.
  const by = Object.fromEntries(results.filter((r) => r.summary).map((r) => [r.key, r.summary]));
  const ctx = ['b', 'c']
    .filter((k) => by.a && by[k])
    .map((k) => `bare/${k} = ${(by.a.reqPerSec / by[k].reqPerSec).toFixed(1)}×`);
  if (ctx.length) {
    console.log(`  baseline context: ${ctx.join(', ')}`);
  }
}
