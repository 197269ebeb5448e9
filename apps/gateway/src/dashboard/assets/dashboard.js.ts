/**
 * The page's script (served as /dashboard/app.js). Plain ES2020 for current browsers, no
 * framework. The stream is read with fetch() so the credential travels in the Authorization
 * header (EventSource cannot send one) and never in a URL or cookie; the DOM is built with
 * textContent only, so names from the gateway cannot inject markup.
 */
export const DASHBOARD_JS = String.raw`'use strict';
(function () {
  var HISTORY = 90;
  /** Charts start with this many slots, so the first seconds do not fill the whole width. */
  var MIN_SLOTS = 30;
  var TRANSPORTS = [['streamable-http', 'HTTP'], ['websocket', 'WS'], ['sse', 'SSE'], ['stdio', 'stdio']];
  var SVG = 'http://www.w3.org/2000/svg';
  var state = { token: null, tenant: null, controller: null, retry: 0, timer: null, history: [] };

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        if (name === 'className') { node.className = attrs[name]; }
        else if (name.indexOf('data-') === 0) { node.setAttribute(name, attrs[name]); }
        else { node[name] = attrs[name]; }
      });
    }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  // ---- formatting -----------------------------------------------------------------------

  var DASH = '\u2014';
  function rate(v) {
    if (v === null || v === undefined) { return DASH; }
    if (v === 0) { return '0'; }
    if (v < 10) { return v.toFixed(2); }
    if (v < 100) { return v.toFixed(1); }
    return Math.round(v).toLocaleString('en-US');
  }
  function pct(v) {
    if (v === null || v === undefined) { return DASH; }
    var p = v * 100;
    return (p === 0 ? '0' : p < 10 ? p.toFixed(2) : p.toFixed(1)) + ' %';
  }
  function secs(v) {
    if (v === null || v === undefined) { return DASH; }
    if (v < 0.001) { return (v * 1000).toFixed(2) + ' ms'; }
    if (v < 1) { return (v * 1000).toFixed(v < 0.1 ? 1 : 0) + ' ms'; }
    return v.toFixed(2) + ' s';
  }
  function count(v) {
    if (v === null || v === undefined) { return DASH; }
    return Math.round(v).toLocaleString('en-US');
  }
  /** Writes a figure with its unit set smaller ("12.5 ms", "3 %"). */
  function figure(id, text) {
    var node = $(id);
    var match = /^(.*\d)\s+(ms|s|%)$/.exec(text);
    if (!match) {
      node.textContent = text;
      return;
    }
    node.replaceChildren(document.createTextNode(match[1]), el('span', { className: 'unit' }, match[2]));
  }
  function clock(ms) {
    return new Date(ms).toLocaleTimeString('en-GB', { hour12: false });
  }

  // ---- state of the page ----------------------------------------------------------------

  function setStatus(kind, text) {
    var status = $('status');
    status.className = 'status status-' + kind;
    status.textContent = text;
  }

  function showLogin(message) {
    $('board').hidden = true;
    $('login').hidden = false;
    $('sign-out').hidden = true;
    $('scope').hidden = true;
    var error = $('login-error');
    error.textContent = message || '';
    error.hidden = !message;
    setStatus('off', 'Signed out');
    $('token').focus();
  }

  function showBoard() {
    $('login').hidden = true;
    $('board').hidden = false;
    $('sign-out').hidden = false;
  }

  function stop() {
    if (state.timer) { clearTimeout(state.timer); state.timer = null; }
    if (state.controller) { state.controller.abort(); state.controller = null; }
  }

  function signOut(message) {
    stop();
    state.token = null;
    state.history = [];
    showLogin(message);
  }

  // ---- the stream -----------------------------------------------------------------------

  function connect() {
    stop();
    var controller = new AbortController();
    state.controller = controller;
    setStatus('wait', state.retry > 0 ? 'Reconnecting\u2026' : 'Connecting\u2026');
    var url = '/dashboard/stream' + (state.tenant ? '?tenant=' + encodeURIComponent(state.tenant) : '');
    fetch(url, {
      headers: { authorization: 'Bearer ' + state.token, accept: 'text/event-stream' },
      cache: 'no-store',
      credentials: 'omit',
      signal: controller.signal
    }).then(function (res) {
      if (!res.ok) {
        return problemOf(res).then(function (detail) { refused(res.status, detail); });
      }
      showBoard();
      setStatus('live', 'Live');
      state.retry = 0;
      return read(res.body.getReader(), controller).then(function () {
        if (state.controller === controller) { later(); }
      });
    }).catch(function () {
      if (state.controller === controller && !controller.signal.aborted) { later(); }
    });
  }

  function problemOf(res) {
    return res.json().then(function (body) {
      return body && typeof body.detail === 'string' ? body.detail : res.statusText;
    }, function () { return res.statusText || ('HTTP ' + res.status); });
  }

  function refused(status, detail) {
    if (status === 401 || status === 403 || status === 404 || status === 400) {
      signOut(detail);
    } else {
      later(detail);
    }
  }

  function later(reason) {
    var delay = Math.min(10000, 1000 * Math.pow(2, state.retry));
    state.retry += 1;
    setStatus('wait', (reason || 'Disconnected') + ', retrying in ' + Math.round(delay / 1000) + ' s');
    state.timer = setTimeout(connect, delay);
  }

  function read(reader, controller) {
    var decoder = new TextDecoder();
    var buffer = '';
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done || state.controller !== controller) { return; }
        buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, '\n');
        var end = buffer.indexOf('\n\n');
        while (end >= 0) {
          dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          end = buffer.indexOf('\n\n');
        }
        return pump();
      });
    }
    return pump();
  }

  function dispatch(block) {
    var type = 'message';
    var data = [];
    block.split('\n').forEach(function (line) {
      if (line === '' || line.charAt(0) === ':') { return; }
      var colon = line.indexOf(':');
      var field = colon < 0 ? line : line.slice(0, colon);
      var value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') { type = value; }
      else if (field === 'data') { data.push(value); }
    });
    if (data.length === 0) { return; }
    var payload = JSON.parse(data.join('\n'));
    if (type === 'message') { render(payload); }
    else if (type === 'revoked') { signOut(payload.detail); }
  }

  // ---- charts ---------------------------------------------------------------------------

  function svgNode(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    return node;
  }

  /** Sparklines of the recent history: one line per series, the first one shaded. */
  function chart(id, series, classes) {
    var max = 0;
    series.forEach(function (values) {
      values.forEach(function (v) { if (v !== null && v > max) { max = v; } });
    });
    var top = max > 0 ? max * 1.15 : 1;
    var slots = Math.max(MIN_SLOTS, series[0].length);
    var step = 100 / (slots - 1);
    var offset = slots - series[0].length;
    var nodes = [svgNode('line', { x1: 0, y1: 31.5, x2: 100, y2: 31.5, 'class': 'base' })];
    series.forEach(function (values, index) {
      var d = '';
      var first = null;
      var lastX = 0;
      values.forEach(function (v, i) {
        if (v === null) { return; }
        var x = (offset + i) * step;
        var y = 31 - (v / top) * 30;
        d += (d === '' ? 'M' : 'L') + x.toFixed(2) + ' ' + y.toFixed(2);
        if (first === null) { first = x; }
        lastX = x;
      });
      if (d === '') { return; }
      if (index === 0 && classes[0] === 'line') {
        nodes.push(svgNode('path', {
          d: d + 'L' + lastX.toFixed(2) + ' 32L' + first.toFixed(2) + ' 32Z', 'class': 'area'
        }));
      }
      nodes.push(svgNode('path', { d: d, 'class': classes[index] }));
    });
    $(id).replaceChildren.apply($(id), nodes);
  }

  // ---- rendering ------------------------------------------------------------------------

  function pill(kind, text) { return el('span', { className: 'pill pill-' + kind }, text); }

  function cell(text, col, numeric) {
    return el('td', { className: numeric ? 'num' : '', 'data-col': col }, text);
  }

  function fill(tableId, rows, columns, emptyText) {
    var body = $(tableId).tBodies[0];
    if (rows.length === 0) {
      var tr = el('tr');
      tr.appendChild(el('td', { className: 'empty', colSpan: columns }, emptyText));
      body.replaceChildren(tr);
      return;
    }
    body.replaceChildren.apply(body, rows);
  }

  function render(frame) {
    var gateway = frame.gateway;
    var own = frame.scope.tenant !== null ? frame.tenants[0] : null;
    var scope = $('scope');
    scope.hidden = false;
    scope.textContent = frame.scope.tenant === null ? 'All tenants' : 'Tenant ' + frame.scope.tenant;

    // Headline: gateway-wide for platform administrators, else the tenant's own tool calls.
    var head = own || !gateway
      ? { label: 'Tool calls / s', rate: own ? own.callsPerSecond : null, total: own ? own.calls : 0,
          noun: 'tool calls', errors: own ? own.errorRate : null, rejected: null,
          p50: own ? own.p50 : null, p99: own ? own.p99 : null }
      : { label: 'Requests / s', rate: gateway.requestsPerSecond, total: gateway.requests,
          noun: 'requests', errors: gateway.errorRate, rejected: gateway.rejectedRate,
          p50: gateway.p50, p99: gateway.p99 };

    var sessions = null;
    var sessionsSub = 'Streamable HTTP, this node';
    if (gateway && !own) {
      sessions = 0;
      var parts = [];
      TRANSPORTS.forEach(function (pair) {
        var n = gateway.sessions[pair[0]];
        if (n !== undefined) {
          sessions += n;
          parts.push(pair[1] + ' ' + count(n));
        }
      });
      sessionsSub = parts.length === 0 ? 'none open' : parts.join(' \u00b7 ');
    } else if (own) {
      sessions = own.sessions;
    }

    state.history.push({
      rate: head.rate, p50: head.p50, p99: head.p99, errors: head.errors, sessions: sessions,
      auth: gateway ? gateway.authFailuresPerSecond : null,
      limited: gateway ? gateway.rateLimitedPerSecond : null
    });
    if (state.history.length > HISTORY) { state.history.shift(); }
    var pick = function (key) { return state.history.map(function (h) { return h[key]; }); };

    $('rate-label').textContent = head.label;
    figure('rate', rate(head.rate));
    $('rate-sub').textContent = count(head.total) + ' ' + head.noun + ' since start';
    chart('rate-chart', [pick('rate')], ['line']);

    figure('p50', secs(head.p50));
    figure('p99', secs(head.p99));
    $('latency-sub').textContent = frame.windowSeconds > 0
      ? 'over the last ' + frame.windowSeconds.toFixed(0) + ' s' : 'collecting\u2026';
    chart('latency-chart', [pick('p50'), pick('p99')], ['line p50', 'line p99']);

    figure('error-rate', pct(head.errors));
    $('error-sub').textContent = head.rejected === null ? 'tool errors' : 'refused before work: ' + pct(head.rejected);
    chart('error-chart', [pick('errors')], ['line bad']);

    figure('sessions', count(sessions));
    $('sessions-sub').textContent = sessionsSub;
    $('streams-sub').textContent = gateway && !own ? count(gateway.streams) + ' open SSE streams' : '';
    chart('sessions-chart', [pick('sessions')], ['line']);
    $('guard-card').hidden = !gateway;
    if (gateway) {
      $('auth-failures').textContent = rate(gateway.authFailuresPerSecond);
      $('rate-limited').textContent = rate(gateway.rateLimitedPerSecond);
      chart('guard-chart', [pick('auth'), pick('limited')], ['line bad', 'line warn']);
    }

    fill('tenants', frame.tenants.map(function (t) {
      var tr = el('tr', { 'data-tenant': t.tenant });
      tr.appendChild(cell(t.tenant, 'tenant'));
      tr.appendChild(cell(rate(t.callsPerSecond), 'rate', true));
      tr.appendChild(cell(count(t.calls), 'calls', true));
      tr.appendChild(cell(count(t.errors), 'errors', true));
      tr.appendChild(cell(pct(t.errorRate), 'error-rate', true));
      tr.appendChild(cell(secs(t.p50), 'p50', true));
      tr.appendChild(cell(secs(t.p99), 'p99', true));
      tr.appendChild(cell(count(t.sessions), 'sessions', true));
      return tr;
    }), 8, 'No tool calls yet');
    $('tenants-note').textContent = frame.omitted.tenants > 0 ? '+' + frame.omitted.tenants + ' quieter tenants not shown' : '';

    fill('backends', frame.backends.map(function (b) {
      var tr = el('tr', { 'data-backend': b.tenant + '/' + b.backend });
      tr.appendChild(cell(b.tenant, 'tenant'));
      tr.appendChild(cell(b.backend, 'backend'));
      var health = el('td', { 'data-col': 'health' });
      health.appendChild(b.up === null ? pill('none', 'unknown') : b.up ? pill('ok', 'up') : pill('bad', 'down'));
      tr.appendChild(health);
      var circuit = el('td', { 'data-col': 'circuit' });
      circuit.appendChild(b.circuit === null ? pill('none', 'unknown')
        : pill(b.circuit === 'closed' ? 'ok' : b.circuit === 'open' ? 'bad' : 'warn', b.circuit));
      tr.appendChild(circuit);
      tr.appendChild(cell(rate(b.requestsPerSecond), 'rate', true));
      tr.appendChild(cell(pct(b.errorRate), 'error-rate', true));
      tr.appendChild(cell(secs(b.p99), 'p99', true));
      return tr;
    }), 7, 'No upstream backend reports here yet');
    $('backends-note').textContent = frame.omitted.backends > 0 ? '+' + frame.omitted.backends + ' not shown' : '';

    $('queues-panel').hidden = frame.queues === null;
    if (frame.queues !== null) {
      fill('queues', frame.queues.map(function (q) {
        var tr = el('tr', { 'data-queue': q.queue });
        var jobs = function (name) { return count(q.jobs[name] || 0); };
        tr.appendChild(cell(q.queue, 'queue'));
        // Prioritised jobs wait too, just in a different order.
        tr.appendChild(cell(count((q.jobs.waiting || 0) + (q.jobs.prioritized || 0)), 'waiting', true));
        tr.appendChild(cell(jobs('active'), 'active', true));
        tr.appendChild(cell(jobs('delayed'), 'delayed', true));
        tr.appendChild(cell(jobs('failed'), 'failed', true));
        tr.appendChild(cell(secs(q.waitP99), 'wait-p99', true));
        tr.appendChild(cell(secs(q.runP99), 'run-p99', true));
        tr.appendChild(cell(rate(q.processedPerSecond), 'done-rate', true));
        tr.appendChild(cell(rate(q.failedPerSecond), 'failed-rate', true));
        return tr;
      }), 9, 'No queue on this node');
    }

    $('footer').textContent = 'Figures of this gateway node \u00b7 window ' + frame.windowSeconds.toFixed(1)
      + ' s \u00b7 updated ' + clock(frame.at);
  }

  // ---- wiring ---------------------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', function () {
    $('login-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var token = $('token').value.trim();
      if (token === '') { return; }
      state.token = token;
      state.tenant = $('tenant').value.trim() || null;
      state.retry = 0;
      state.history = [];
      $('token').value = '';
      connect();
    });
    $('sign-out').addEventListener('click', function () { signOut(''); });
    showLogin('');
  });
})();
`;
