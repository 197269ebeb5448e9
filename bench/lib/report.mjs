// Aggregation and printing. Rounds are summarised by their median: on a noisy
// 2-core machine a single slow or fast round should not move the headline.

export const TARGETS_GOALS = {
  engineOpsPerSec: 1_000_000,
  vsBareFastify: 0.6,
  vsBareWs: 0.6,
  vsSdk: 6,
  p99Ms: 10,
  /** Authenticated tools/call throughput over the same call without credentials. */
  authVsNone: 0.9,
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

/**
 * Collapse a target's rounds into the figures the report shows (HTTP and
 * WebSocket rounds; the latter have no status codes, hence no non2xx).
 */
export function summarize(rounds) {
  const rps = rounds.map((r) => r.reqPerSec);
  return {
    reqPerSec: Math.round(median(rps)),
    minReqPerSec: Math.min(...rps),
    maxReqPerSec: Math.max(...rps),
    p50Ms: median(rounds.map((r) => r.latencyMs.p50)),
    p99Ms: median(rounds.map((r) => r.latencyMs.p99)),
    ...(rounds.some((r) => 'non2xx' in r) ? { non2xx: sum(rounds.map((r) => r.non2xx)) } : {}),
    ...(rounds.some((r) => 'serverCpuUsPerReq' in r)
      ? { serverCpuUsPerReq: median(rounds.map((r) => r.serverCpuUsPerReq)) }
      : {}),
    errors: sum(rounds.map((r) => r.errors)),
    timeouts: sum(rounds.map((r) => r.timeouts)),
    invalid: sum(rounds.map((r) => r.invalid)),
    serverCpuPercent: roundOrNull(median(rounds.map((r) => r.cpuPercent.server))),
    loaderCpuPercent: roundOrNull(median(rounds.map((r) => r.cpuPercent.loader))),
  };
}

/** stdio rounds: sequential round trips, latency in µs. */
export function summarizeStdio(rounds) {
  const cps = rounds.map((r) => r.callsPerSec);
  return {
    callsPerSec: Math.round(median(cps)),
    minCallsPerSec: Math.min(...cps),
    maxCallsPerSec: Math.max(...cps),
    p50Us: roundOrNull(median(rounds.map((r) => r.latencyUs.p50))),
    p90Us: roundOrNull(median(rounds.map((r) => r.latencyUs.p90))),
    p99Us: roundOrNull(median(rounds.map((r) => r.latencyUs.p99))),
    maxUs: Math.max(...rounds.map((r) => r.latencyUs.max ?? 0)),
    errors: sum(rounds.map((r) => r.errors)),
    timeouts: sum(rounds.map((r) => r.timeouts)),
    invalid: sum(rounds.map((r) => r.invalid)),
    serverCpuPercent: roundOrNull(median(rounds.map((r) => r.cpuPercent.server))),
    loaderCpuPercent: roundOrNull(median(rounds.map((r) => r.cpuPercent.loader))),
    serverCpuUsPerCall: median(rounds.map((r) => r.serverCpuUsPerCall)),
  };
}

export const isClean = (s) => (s.non2xx ?? 0) + s.errors + s.timeouts + s.invalid === 0;

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
      rows.push([name, 'skipped', '', '', '', '', '', '', '', '', '']);
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
      fixed(s.serverCpuUsPerReq, 1),
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
        'srv µs/req',
      ],
      rows,
    ),
  );

  printProblems(results);
  printNotes(results);
}

/** Skipped targets, failed requests and post-load check failures, under a table. */
function printProblems(results) {
  for (const r of results) {
    if (r.skipped) {
      console.log(`  ${r.key} skipped: ${r.skipped}`);
    } else if (r.summary && !isClean(r.summary)) {
      console.log(`  ${r.key} had failed requests — its figures are not valid.`);
      if (r.firstError) {
        console.log(`     first error: ${r.firstError}`);
      }
      if (r.firstInvalid) {
        console.log(`     first invalid answer (${r.firstInvalid.reason}): ${r.firstInvalid.body}`);
      }
    }
    if (r.postCheck) {
      console.log(`  ${r.key} post-load check failed: ${r.postCheck}`);
    }
  }
}

/** Warnings about how far the figures can be trusted on this machine. */
function printNotes(results, rate = 'reqPerSec', unit = 'req/s') {
  const [lo, hi] = [
    `min${rate[0].toUpperCase()}${rate.slice(1)}`,
    `max${rate[0].toUpperCase()}${rate.slice(1)}`,
  ];
  const noisy = results
    .filter((r) => r.summary && r.rounds.length > 1)
    .filter((r) => (r.summary[hi] - r.summary[lo]) / r.summary[rate] > 0.2)
    .map((r) => r.key);
  if (noisy.length) {
    console.log(
      `  note: rounds of ${noisy.join(', ')} spread by > 20% of the median — a noisy machine; ` +
        'compare ratios from one run, or raise BENCH_ROUNDS.',
    );
  }
  // With 2 cores the load generator and the server each need one. When the
  // generator is pegged it may be what limits throughput, so the server could
  // be faster than shown — which flatters ratios with that target as divisor.
  const pegged = results.filter((r) => r.summary?.loaderCpuPercent >= 90).map((r) => r.key);
  if (pegged.length) {
    console.log(
      `  note: the load generator was ≥ 90% CPU during ${pegged.join(', ')}; ` +
        `those ${unit} may be limited by the generator rather than the server.`,
    );
  }
}

export function printWs(results, config) {
  console.log(
    `\n== tools/call over WebSocket: ${config.wsConnections} connections × pipeline ` +
      `${config.wsPipeline}, ${config.rounds} × ${config.durationSec}s rounds (median), ` +
      `warm-up ${config.warmupSec}s ==`,
  );
  const rows = results.map((r) => {
    const name = `${r.key}  ${r.label}`;
    if (!r.summary) {
      return [name, 'skipped', '', '', '', '', '', '', '', '', ''];
    }
    const s = r.summary;
    return [
      name,
      int(s.reqPerSec),
      `${int(s.minReqPerSec)}–${int(s.maxReqPerSec)}`,
      fixed(s.p50Ms),
      fixed(s.p99Ms),
      s.errors,
      s.timeouts,
      r.verified ? s.invalid : 'n/a',
      pctStr(s.serverCpuPercent),
      pctStr(s.loaderCpuPercent),
      fixed(s.serverCpuUsPerReq, 1),
    ];
  });
  const header = ['target', 'req/s', 'range', 'p50 ms', 'p99 ms', 'errors', 'timeouts'];
  console.log(table([...header, 'invalid', 'srv cpu', 'gen cpu', 'srv µs/req'], rows));
  printProblems(results);
  printNotes(results);
}

export function printStdio(results, config) {
  console.log(
    `\n== tools/call over stdio: sequential round trips (one in flight), ` +
      `${config.rounds} × ${config.durationSec}s rounds (median), warm-up ${config.warmupSec}s ==`,
  );
  const rows = results.map((r) => {
    const name = `${r.key}  ${r.label}`;
    if (!r.summary) {
      return [name, 'skipped', '', '', '', '', '', '', '', ''];
    }
    const s = r.summary;
    return [
      name,
      int(s.callsPerSec),
      `${int(s.minCallsPerSec)}–${int(s.maxCallsPerSec)}`,
      int(s.p50Us),
      int(s.p99Us),
      s.errors + s.timeouts,
      r.verified ? s.invalid : 'n/a',
      pctStr(s.serverCpuPercent),
      pctStr(s.loaderCpuPercent),
      fixed(s.serverCpuUsPerCall, 1),
    ];
  });
  const header = ['target', 'calls/s', 'range', 'p50 µs', 'p99 µs', 'errors', 'invalid'];
  console.log(table([...header, 'srv cpu', 'cli cpu', 'srv µs/call'], rows));
  printProblems(results);
  printNotes(results, 'callsPerSec', 'calls/s');
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
  // Authentication on the hot path: same server, same era, with and without credentials.
  // Next to the goal (req/s), for information, the same comparison by server CPU per request,
  // which the load generator's share of the two cores and other processes disturb less.
  for (const k of ['f', 'g']) {
    ratio(k, 'e', TARGETS_GOALS.authVsNone, 'throughput with auth');
    checks.push(
      ...ratioCheck(results, k, 'e', {
        rate: 'serverCpuUsPerReq',
        inverse: true,
        what: 'server CPU efficiency with auth (e µs/req ÷ auth µs/req)',
      }),
    );
  }
  // The same comparison with the JWT's bytes on both sides: what the checks cost, not the wire.
  checks.push(
    ...ratioCheck(results, 'g', 'h', { what: 'throughput with auth, same bytes on the wire' }),
  );
  return checks;
}

/**
 * Throughput ratio of a Portico target to a same-run baseline, from
 * `results` (summarised targets keyed by `key`). Without a goal the ratio is
 * reported for information only.
 */
function ratioCheck(
  results,
  num,
  den,
  { goal, rate = 'reqPerSec', what = 'throughput', inverse = false },
) {
  const by = Object.fromEntries(results.filter((r) => r.summary).map((r) => [r.key, r]));
  if (!by[num]?.summary[rate] || !by[den]?.summary[rate]) {
    return [];
  }
  // `inverse` for costs (CPU per call): baseline / Portico, so higher is better, like req/s.
  const value = inverse
    ? by[den].summary[rate] / by[num].summary[rate]
    : by[num].summary[rate] / by[den].summary[rate];
  const trusted = [num, den].every((k) => isClean(by[k].summary) && !by[k].postCheck);
  return [
    {
      what: `${what}: ${by[num].label} (${num}) / ${by[den].label} (${den})`,
      value: Number(value.toFixed(2)),
      unit: '×',
      goal: goal === undefined ? null : `≥ ${goal}`,
      pass: goal === undefined ? null : value >= goal,
      valid: trusted,
    },
  ];
}

/**
 * WebSocket: Portico, either era, against the bare ws echo. Next to the goal
 * (req/s), for information, the same comparison by server CPU per request,
 * which leaves the load generator's share of the cores out.
 */
export function computeWsChecks(results) {
  return ['w2', 'w3'].flatMap((k) => [
    ...ratioCheck(results, k, 'w1', { goal: TARGETS_GOALS.vsBareWs, what: 'WS throughput' }),
    ...ratioCheck(results, k, 'w1', {
      rate: 'serverCpuUsPerReq',
      inverse: true,
      what: 'WS server CPU efficiency (bare µs/req ÷ Portico µs/req)',
    }),
  ]);
}

/** stdio has no goal yet: the ratios are printed for information. */
export function computeStdioChecks(results) {
  return ['s2', 's3'].flatMap((k) => [
    ...ratioCheck(results, k, 's1', { rate: 'callsPerSec', what: 'stdio calls/s' }),
    ...ratioCheck(results, k, 's1', {
      rate: 'serverCpuUsPerCall',
      inverse: true,
      what: 'stdio server CPU efficiency (bare µs/call ÷ Portico µs/call)',
    }),
    ...ratioCheck(results, k, 's1', {
      rate: 'p50Us',
      what: 'stdio p50 round trip (lower is better)',
    }),
  ]);
}

export function printChecks(checks, results) {
  console.log('\n== Portico vs goals ==');
  if (!checks.length) {
    console.log(
      '  Nothing to compare: Portico, or its same-run baseline (a, w1, s1), was not measured.',
    );
  }
  if (checks.some((c) => !c.valid)) {
    console.log('  N/A = a target in the comparison had failed requests.');
  }
  for (const c of checks) {
    const verdict = !c.valid ? 'N/A ' : c.pass === null ? 'INFO' : c.pass ? 'PASS' : 'FAIL';
    const goal = c.goal ? `  (goal ${c.goal})` : '';
    console.log(`  ${verdict}  ${c.what} = ${c.value}${c.unit}${goal}`);
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
