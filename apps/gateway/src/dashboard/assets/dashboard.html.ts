/**
 * The page shell: markup only, no data and no inline script or style (the CSP forbids both).
 * Figures arrive once the viewer signs in, over /dashboard/stream.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Portico · live dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/app.css">
<script src="/dashboard/app.js" defer></script>
</head>
<body>
<header class="top">
  <h1>Portico <span class="muted">live dashboard</span></h1>
  <span id="scope" class="scope" hidden></span>
  <span id="status" class="status status-off" role="status" aria-live="polite">Signed out</span>
  <button id="sign-out" type="button" class="link" hidden>Sign out</button>
</header>

<main>
  <section id="login" class="panel login">
    <h2>Sign in</h2>
    <p class="muted">
      Use an admin credential: the bootstrap token or a platform API key for every tenant, or a
      tenant administrator's API key or JWT for one tenant. It is kept in this tab's memory only.
    </p>
    <form id="login-form" autocomplete="off">
      <label for="token">Admin token</label>
      <input id="token" name="token" type="password" spellcheck="false" required>
      <label for="tenant">Tenant slug <span class="muted">(for a JWT, or to focus on one tenant)</span></label>
      <input id="tenant" name="tenant" type="text" spellcheck="false">
      <button id="sign-in" type="submit">Open dashboard</button>
      <p id="login-error" class="error" role="alert" hidden></p>
    </form>
  </section>

  <section id="board" hidden>
    <div class="cards">
      <article class="card">
        <h3 id="rate-label">Requests / s</h3>
        <p class="value" id="rate">—</p>
        <svg id="rate-chart" class="spark" viewBox="0 0 100 32" preserveAspectRatio="none" aria-hidden="true"></svg>
        <p class="sub" id="rate-sub">&nbsp;</p>
      </article>
      <article class="card">
        <h3>Latency <span class="muted">p50 / p99</span></h3>
        <p class="value"><span id="p50" class="p50">—</span><span class="sep"> / </span><span id="p99" class="p99">—</span></p>
        <svg id="latency-chart" class="spark" viewBox="0 0 100 32" preserveAspectRatio="none" aria-hidden="true"></svg>
        <p class="sub" id="latency-sub">&nbsp;</p>
      </article>
      <article class="card">
        <h3>Error rate</h3>
        <p class="value" id="error-rate">—</p>
        <svg id="error-chart" class="spark" viewBox="0 0 100 32" preserveAspectRatio="none" aria-hidden="true"></svg>
        <p class="sub" id="error-sub">&nbsp;</p>
      </article>
      <article class="card">
        <h3>Sessions</h3>
        <p class="value" id="sessions">—</p>
        <svg id="sessions-chart" class="spark" viewBox="0 0 100 32" preserveAspectRatio="none" aria-hidden="true"></svg>
        <p class="sub" id="sessions-sub">&nbsp;</p>
        <p class="sub" id="streams-sub"></p>
      </article>
      <article class="card" id="guard-card">
        <h3>Refusals / s</h3>
        <p class="value"><span id="auth-failures">—</span><span class="sep"> · </span><span id="rate-limited">—</span></p>
        <svg id="guard-chart" class="spark" viewBox="0 0 100 32" preserveAspectRatio="none" aria-hidden="true"></svg>
        <p class="sub">credentials · quotas</p>
      </article>
    </div>

    <section class="panel">
      <h2>Tenants <span class="muted" id="tenants-note"></span></h2>
      <table id="tenants">
        <thead><tr>
          <th>Tenant</th><th class="num">Calls / s</th><th class="num">Calls</th><th class="num">Errors</th>
          <th class="num">Error rate</th><th class="num">p50</th><th class="num">p99</th><th class="num">Sessions</th>
        </tr></thead>
        <tbody></tbody>
      </table>
    </section>

    <section class="panel">
      <h2>Backends <span class="muted" id="backends-note"></span></h2>
      <table id="backends">
        <thead><tr>
          <th>Tenant</th><th>Backend</th><th>Health</th><th>Circuit</th>
          <th class="num">Requests / s</th><th class="num">Error rate</th><th class="num">p99</th>
        </tr></thead>
        <tbody></tbody>
      </table>
    </section>

    <section class="panel" id="queues-panel">
      <h2>Queues</h2>
      <table id="queues">
        <thead><tr>
          <th>Queue</th><th class="num">Waiting</th><th class="num">Active</th><th class="num">Delayed</th>
          <th class="num">Failed</th><th class="num">Wait p99</th><th class="num">Run p99</th>
          <th class="num">Done / s</th><th class="num">Failed / s</th>
        </tr></thead>
        <tbody></tbody>
      </table>
    </section>

    <footer class="muted" id="footer">&nbsp;</footer>
  </section>
</main>
</body>
</html>
`;
