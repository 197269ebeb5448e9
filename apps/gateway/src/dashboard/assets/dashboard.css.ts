/** The page's only stylesheet (served as /dashboard/app.css). */
export const DASHBOARD_CSS = `
:root {
  --bg: #f4f5f7;
  --panel: #ffffff;
  --border: #e1e4e8;
  --text: #1f2328;
  --muted: #656d76;
  --accent: #2563eb;
  --accent-soft: rgba(37, 99, 235, 0.12);
  --p99: #c2410c;
  --ok: #15803d;
  --warn: #b45309;
  --bad: #b91c1c;
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0f1115;
    --panel: #171a21;
    --border: #2a2f3a;
    --text: #e6e8eb;
    --muted: #9aa3ad;
    --accent: #60a5fa;
    --accent-soft: rgba(96, 165, 250, 0.15);
    --p99: #fb923c;
    --ok: #4ade80;
    --warn: #fbbf24;
    --bad: #f87171;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0;
  background: var(--bg);
  color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
}
[hidden] { display: none !important; }
.muted { color: var(--muted); font-weight: 400; }
.top {
  display: flex;
  align-items: center;
  gap: 12px;
  padding: 12px 24px;
  background: var(--panel);
  border-bottom: 1px solid var(--border);
}
.top h1 { font-size: 17px; margin: 0; flex: 1; }
.scope {
  padding: 2px 10px;
  border-radius: 999px;
  background: var(--accent-soft);
  color: var(--accent);
  font-weight: 600;
}
.status {
  padding: 2px 10px;
  border-radius: 999px;
  border: 1px solid var(--border);
  font-size: 13px;
}
.status::before { content: "● "; }
.status-live { color: var(--ok); }
.status-wait { color: var(--warn); }
.status-off { color: var(--muted); }
button {
  font: inherit;
  padding: 7px 14px;
  border-radius: 6px;
  border: 1px solid var(--accent);
  background: var(--accent);
  color: #fff;
  cursor: pointer;
}
button.link { background: none; color: var(--accent); border-color: transparent; padding: 4px 6px; }
main { max-width: 1280px; margin: 0 auto; padding: 20px 24px 32px; }
.panel {
  background: var(--panel);
  border: 1px solid var(--border);
  border-radius: 10px;
  padding: 16px 20px;
  margin-top: 16px;
}
.panel h2 { font-size: 15px; margin: 0 0 10px; }
.login { max-width: 520px; margin: 48px auto; }
.login form { display: grid; gap: 6px; }
.login label { margin-top: 8px; font-weight: 600; }
.login input {
  font: inherit;
  padding: 8px 10px;
  border-radius: 6px;
  border: 1px solid var(--border);
  background: var(--bg);
  color: var(--text);
}
.login button { margin-top: 14px; justify-self: start; }
.error { color: var(--bad); margin: 8px 0 0; }
.cards {
  display: grid;
  grid-template-columns: repeat(auto-fit, minmax(210px, 1fr));
  gap: 16px;
}
.card {
  background: var(--panel);
  border: 1px solid var(--border);
  border-radius: 10px;
  padding: 14px 16px 12px;
  min-width: 0;
}
.card h3 {
  margin: 0;
  font-size: 12px;
  font-weight: 600;
  letter-spacing: 0.04em;
  text-transform: uppercase;
  color: var(--muted);
}
.value {
  margin: 4px 0 2px;
  font-size: 28px;
  font-weight: 650;
  font-variant-numeric: tabular-nums;
  white-space: nowrap;
}
.value .sep { color: var(--muted); font-weight: 400; }
.value .p50 { color: var(--accent); }
.value .p99 { color: var(--p99); }
.value .unit { font-size: 0.55em; font-weight: 500; color: var(--muted); margin-left: 3px; }
.sub { margin: 2px 0 0; font-size: 12px; color: var(--muted); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.spark { display: block; width: 100%; height: 40px; margin-top: 6px; overflow: visible; }
.spark .line { fill: none; stroke: var(--accent); stroke-width: 1.6; vector-effect: non-scaling-stroke; stroke-linejoin: round; }
.spark .line.p99 { stroke: var(--p99); }
.spark .line.bad { stroke: var(--bad); }
.spark .line.warn { stroke: var(--warn); }
.spark .area { fill: var(--accent-soft); stroke: none; }
.spark .base { stroke: var(--border); stroke-width: 1; vector-effect: non-scaling-stroke; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 7px 10px; text-align: left; border-bottom: 1px solid var(--border); white-space: nowrap; }
th { font-size: 12px; font-weight: 600; color: var(--muted); }
tbody tr:last-child td { border-bottom: none; }
.num { text-align: right; }
td.empty { color: var(--muted); text-align: center; padding: 14px; }
.pill { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 12px; font-weight: 600; border: 1px solid currentColor; }
.pill-ok { color: var(--ok); }
.pill-warn { color: var(--warn); }
.pill-bad { color: var(--bad); }
.pill-none { color: var(--muted); border-style: dashed; }
footer { margin-top: 14px; font-size: 12px; text-align: right; }
`;
