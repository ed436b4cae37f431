// Phoenix gateway: what the gateway sees — /phoenix/status (JSON), /metrics (Prometheus)
// and the status page — counted exactly across nginx workers, with nothing in the request
// path but one access-log line.
//
// njs 0.7.9 (Debian 12) has no shared dictionary and no state between requests, so the
// counts come from nginx itself: every API request appends one line to the metrics log
// (one write() per line, O_APPEND, so lines from all workers interleave whole). A read
// counts the lines added since the last checkpoint, adds them to the checkpoint's counts
// and writes the new checkpoint (offset + counts) atomically. Two reads at once each
// write a consistent checkpoint (counts always match their offset), so any of them may
// win. A rotated log (other inode, or shorter) restarts the counts (a counter reset, as
// Prometheus expects after a restart).
//
// Bounded memory, whatever the traffic since the last read: njs frees nothing before the
// request ends, so the log is never turned into JavaScript strings. One reused buffer is
// read in CHUNK pieces and each line is scanned byte by byte (numbers only; a field is
// matched against the byte strings of the served models and their backends, made once per
// read), so a read's memory does not grow with the lines it counts. One read counts at
// most MAX_READ bytes (its time is bounded too; the next read goes on from there, and
// `pending_bytes` says how far behind it is) and checkpoints every CHECKPOINT_EVERY bytes,
// so a read that is cut short still moves the position on: no read can wedge the next.
//
// Line: msec \t model \t status \t upstream_addr \t upstream_status \t upstream_header_time
//       \t upstream_response_time \t key \t usage   (key: the API key's name, '-' on a
//       gateway without keys; usage: "<prompt> <completion>" tokens as the model server
//       counted them (usage.js), '-' when its answer had none; the upstream_* lists are ", "-separated per attempt,
//       " : " between the upstreams of an internal redirect; nginx writes `"`, `\`, control
//       and non-ASCII bytes as \xXX). To count something new: add a field to the log format
//       (api_site.py), read it in count() and keep its counts in the checkpoint's state.
import fs from 'fs';
import table from 'phoenix_models.js';
import page_html from 'status_page.js';

var CHUNK = 1 << 18;
var MAX_READ = 1 << 23;
var CHECKPOINT_EVERY = 1 << 22;
var FAIL_TIMEOUT_S = 10;
var STATE_VERSION = 3;
var FIELDS = 9;
// The status page's charts: requests and tokens per model in SERIES_STEP_S buckets over
// the last SERIES_BUCKETS of them (kept in the checkpoint: bounded by models x buckets).
var SERIES_STEP_S = 10;
var SERIES_BUCKETS = 60;
var TAB = 9, NL = 10, SPACE = 32, COMMA = 44, COLON = 58, DOT = 46, DASH = 45;

function fresh(ino) {
    return {v: STATE_VERSION, ino: ino, offset: 0, requests: {}, upstream: {}, backends: {},
            tokens: {}, series: {}, last_bucket: 0};
}

function loadState(ino) {
    try {
        var state = JSON.parse(fs.readFileSync(table.metrics.state));
        if (state.v === STATE_VERSION && state.ino === ino && state.offset >= 0) {
            return state;
        }
    } catch (e) {
        // no checkpoint yet, or unreadable: count from the start of the log
    }
    return fresh(ino);
}

function saveState(state) {
    var tmp = table.metrics.state + '.' + process.pid;
    try {
        fs.writeFileSync(tmp, JSON.stringify(state));
        fs.renameSync(tmp, table.metrics.state);
    } catch (e) {
        // read-only: the next read counts from the last checkpoint again (still exact)
    }
}

// A name as nginx writes it into the log: `$phx_model` holds the JSON-escaped name, and
// the log escapes `"`, `\`, control and non-ASCII bytes as \xXX (upper-case hex).
function logged(name) {
    var raw = Buffer.from(JSON.stringify(name).slice(1, -1)), out = '';
    for (var i = 0; i < raw.length; i++) {
        var c = raw[i];
        out += c === 34 || c === 92 || c < 32 || c > 126
            ? '\\x' + (c < 16 ? '0' : '') + c.toString(16).toUpperCase()
            : String.fromCharCode(c);
    }
    return Buffer.from(out);
}

// What a read matches fields against: the served models' and their backends' names as
// bytes, made once per read (bounded by the inventory, not by the traffic).
function matchers() {
    var models = Object.keys(table.backends), addrs = [];
    models.forEach(function(m) {
        table.backends[m].forEach(function(a) {
            if (addrs.indexOf(a) < 0) {
                addrs.push(a);
            }
        });
    });
    var keys = [];
    Object.keys(table.keys || {}).forEach(function(hash) {
        var name = table.keys[hash].name;
        if (keys.indexOf(name) < 0) {
            keys.push(name);
        }
    });
    return {models: models, modelBytes: models.map(logged), addrs: addrs,
            addrBytes: addrs.map(function(a) { return Buffer.from(a); }),
            keys: keys, keyBytes: keys.map(logged)};
}

function find(buf, s, e, candidates) {
    var len = e - s;
    for (var k = 0; k < candidates.length; k++) {
        var c = candidates[k];
        if (c.length !== len) {
            continue;
        }
        var i = 0;
        while (i < len && buf[s + i] === c[i]) {
            i++;
        }
        if (i === len) {
            return k;
        }
    }
    return -1;
}

// A decimal number (msec, seconds) from bytes; NaN for '-' or anything else.
function number(buf, s, e) {
    var v = 0, scale = 0;
    if (s >= e) {
        return NaN;
    }
    for (var i = s; i < e; i++) {
        var c = buf[i];
        if (c === DOT && scale === 0) {
            scale = 1;
        } else if (c >= 48 && c <= 57) {
            v = v * 10 + (c - 48);
            scale = scale ? scale * 10 : 0;
        } else {
            return NaN;
        }
    }
    return scale ? v / scale : v;
}

// One list item of an upstream_* field: the next run of bytes other than ' ' and ',',
// skipping the lone ':' between the upstreams of an internal redirect. Sets tok[0..1]
// (start, end) and returns false at the field's end.
var tok = [0, 0];
function item(buf, pos, end) {
    for (;;) {
        while (pos < end && (buf[pos] === SPACE || buf[pos] === COMMA)) {
            pos++;
        }
        if (pos >= end) {
            return false;
        }
        var s = pos;
        while (pos < end && buf[pos] !== SPACE && buf[pos] !== COMMA) {
            pos++;
        }
        if (pos - s === 1 && buf[s] === COLON) {
            continue;
        }
        tok[0] = s;
        tok[1] = pos;
        return true;
    }
}

// "<prompt> <completion>" into usage[0..1]; false for '-' or anything else.
function tokenCounts(buf, s, e) {
    var sp = buf.indexOf(SPACE, s);
    if (sp < 0 || sp >= e) {
        return false;
    }
    usage[0] = number(buf, s, sp);
    usage[1] = number(buf, sp + 1, e);
    return usage[0] >= 0 && usage[1] >= 0;
}

// Drops chart buckets older than the window (the checkpoint stays bounded).
function prune(state) {
    var oldest = state.last_bucket - SERIES_BUCKETS;
    for (var model in state.series) {
        for (var b in state.series[model]) {
            if (Number(b) <= oldest) {
                delete state.series[model][b];
            }
        }
    }
}

// Counts one line buf[s..e) (without its newline) into state; cut[] holds field starts.
var cut = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
var usage = [0, 0];
function count(state, m, buf, s, e) {
    var n = 0, i = s;
    cut[0] = s;
    while (n < FIELDS - 1) {
        i = buf.indexOf(TAB, i);
        if (i < 0 || i >= e) {
            if (n < 6) {
                return;  // not a line of this format
            }
            break;  // a line written before key and usage were logged
        }
        cut[++n] = ++i;
    }
    while (n < FIELDS) {
        cut[++n] = e + 1;
    }
    var msec = number(buf, cut[0], cut[1] - 1);
    // Only served models are labels: a name a client made up (answered 404) is not.
    var k = find(buf, cut[1], cut[2] - 1, m.modelBytes);
    var model = k < 0 ? '' : m.models[k];
    var status = number(buf, cut[2], cut[3] - 1);
    if (!(status >= 100 && status <= 999)) {
        return;
    }
    var byModel = state.requests[model] || (state.requests[model] = {});
    byModel[status] = (byModel[status] || 0) + 1;
    var tokens = 0;
    if (k >= 0 && tokenCounts(buf, cut[8], cut[9] - 1)) {
        // Only declared keys are labels ('' without one, or on a gateway without keys).
        var kk = find(buf, cut[7], cut[8] - 1, m.keyBytes);
        var key = kk < 0 ? '' : m.keys[kk];
        var perKey = state.tokens[model] || (state.tokens[model] = {});
        var t = perKey[key] || (perKey[key] = [0, 0, 0]);
        t[0] += usage[0];
        t[1] += usage[1];
        t[2] += 1;
        tokens = usage[0] + usage[1];
    }
    if (k >= 0 && msec > 0) {
        var bucket = Math.floor(msec / SERIES_STEP_S);
        var perModel = state.series[model] || (state.series[model] = {});
        var sb = perModel[bucket] || (perModel[bucket] = [0, 0]);
        sb[0] += 1;
        sb[1] += tokens;
        if (bucket > state.last_bucket) {
            state.last_bucket = bucket;
        }
    }
    // The time of every attempt; a last attempt with no time got no response.
    var p = cut[6], sum = 0, last = NaN;
    while (item(buf, p, cut[7] - 1)) {
        last = number(buf, tok[0], tok[1]);
        sum += last || 0;
        p = tok[1];
    }
    if (!isNaN(last)) {
        var up = state.upstream[model] || (state.upstream[model] = [0, 0]);
        up[0] += sum;
        up[1] += 1;
    }
    // Attempts, paired with their header times: [answered, failed, last answered msec,
    // last failed msec]; an attempt that got no response header (refused, timed out,
    // reset) failed, whatever the status.
    var a = cut[3], h = cut[5];
    while (item(buf, a, cut[4] - 1)) {
        a = tok[1];
        var b = find(buf, tok[0], tok[1], m.addrBytes);
        var got = item(buf, h, cut[6] - 1);
        var answered = got && buf[tok[0]] !== DASH;
        h = got ? tok[1] : h;
        if (b < 0) {
            continue;  // "no live upstreams" names the upstream; not a backend of a model
        }
        var addr = m.addrs[b];
        var c = state.backends[addr] || (state.backends[addr] = [0, 0, 0, 0]);
        if (answered) {
            c[0] += 1;
            c[2] = msec;
        } else {
            c[1] += 1;
            c[3] = msec;
        }
    }
}

// The counts up to the end of the metrics log (at most MAX_READ bytes more), checkpointed.
function collect() {
    var fd;
    try {
        fd = fs.openSync(table.metrics.log, 'r');
    } catch (e) {
        return fresh(0);
    }
    try {
        var st = fs.fstatSync(fd);
        var state = loadState(st.ino);
        if (st.size < state.offset) {
            state = fresh(st.ino);
        }
        var m = matchers(), buf = Buffer.alloc(CHUNK), stop = state.offset + MAX_READ;
        var saved = state.offset;
        while (state.offset < st.size && state.offset < stop) {
            var n = fs.readSync(fd, buf, 0, Math.min(CHUNK, st.size - state.offset),
                                state.offset);
            if (n <= 0) {
                break;
            }
            var s = 0, e;
            while ((e = buf.indexOf(NL, s)) >= 0 && e < n) {
                count(state, m, buf, s, e);
                s = e + 1;
            }
            if (s === 0) {
                if (n < CHUNK) {
                    break;  // the last line is still being written
                }
                s = n;  // a line longer than CHUNK is not ours: skip it
            }
            state.offset += s;
            if (state.offset - saved >= CHECKPOINT_EVERY) {
                prune(state);
                saveState(state);
                saved = state.offset;
            }
        }
        prune(state);
        if (state.offset !== saved) {
            saveState(state);
        }
        state.pending_bytes = Math.max(0, st.size - state.offset);
        return state;
    } finally {
        fs.closeSync(fd);
    }
}

function uptime() {
    try {
        var started = Number(fs.readFileSync('/proc/' + process.ppid + '/stat').toString()
                                 .split(') ')[1].split(' ')[19]);
        var up = Number(fs.readFileSync('/proc/uptime').toString().split(' ')[0]);
        return Math.max(0, Math.round(up - started / 100));
    } catch (e) {
        return null;
    }
}

function backendState(b, now) {
    if (!b) {
        return 'unknown';
    }
    if (b[3] > b[2]) {
        return now - b[3] < FAIL_TIMEOUT_S ? 'down' : 'down, probing again';
    }
    return 'up';
}

// {prompt, completion, by_key: {key: {prompt, completion, requests}}} of one model.
function tokenTotals(perKey) {
    var out = {prompt: 0, completion: 0, by_key: {}};
    for (var key in perKey || {}) {
        var t = perKey[key];
        out.prompt += t[0];
        out.completion += t[1];
        out.by_key[key] = {prompt: t[0], completion: t[1], requests: t[2]};
    }
    return out;
}

// The chart of one model: requests and tokens per SERIES_STEP_S, oldest first, ending at
// the bucket of `now` (empty buckets are zeros).
function chart(buckets, now) {
    var last = Math.floor(now / SERIES_STEP_S), requests = [], tokens = [];
    for (var b = last - SERIES_BUCKETS + 1; b <= last; b++) {
        var v = buckets && buckets[b];
        requests.push(v ? v[0] : 0);
        tokens.push(v ? v[1] : 0);
    }
    return {step_s: SERIES_STEP_S, end: last * SERIES_STEP_S, requests: requests,
            tokens: tokens};
}

function klass(status) {
    return status.charAt(0) + 'xx';
}

function summary(r) {
    var state = collect(), now = Number(r.variables.msec);
    var models = [], degraded = false;
    var names = Object.keys(table.backends).sort();
    for (var m = 0; m < names.length; m++) {
        var backends = table.backends[names[m]].map(function(addr) {
            var b = state.backends[addr], s = backendState(b, now);
            degraded = degraded || s !== 'up' && s !== 'unknown';
            return {address: addr, state: s, answered: b ? b[0] : 0, failed: b ? b[1] : 0,
                    last_failure_s_ago: b && b[3] ? Math.round(now - b[3]) : null};
        });
        var counts = state.requests[names[m]] || {}, classes = {};
        for (var code in counts) {
            classes[klass(code)] = (classes[klass(code)] || 0) + counts[code];
        }
        var up = state.upstream[names[m]];
        models.push({id: names[m], backends: backends, requests: classes,
                     upstream_avg_ms: up && up[1] ? Math.round(up[0] / up[1] * 1000 * 10) / 10
                                                  : null,
                     tokens: tokenTotals(state.tokens[names[m]]),
                     series: chart(state.series[names[m]], now)});
    }
    var total = {};
    for (var model in state.requests) {
        for (var c in state.requests[model]) {
            total[klass(c)] = (total[klass(c)] || 0) + state.requests[model][c];
        }
    }
    return {
        status: degraded ? 'degraded' : 'ok', service: 'phoenix-gateway',
        version: table.version, config: table.config, mode: table.mode, uptime_s: uptime(),
        connections: {active: Number(r.variables.connections_active),
                      reading: Number(r.variables.connections_reading),
                      writing: Number(r.variables.connections_writing),
                      waiting: Number(r.variables.connections_waiting)},
        requests: total, models: models,
        // Log bytes not counted yet (a read counts at most MAX_READ): 0 when up to date.
        metrics_pending_bytes: state.pending_bytes, state: state
    };
}

function status(r) {
    var s = summary(r);
    delete s.state;
    r.headersOut['Content-Type'] = 'application/json';
    r.headersOut['Cache-Control'] = 'no-store';
    r.return(200, JSON.stringify(s) + '\n');
}

function label(value) {
    return '"' + String(value).replace(/\\/g, '\\\\').replace(/"/g, '\\"')
                              .replace(/\n/g, '\\n') + '"';
}

function prometheus(r) {
    var s = summary(r), state = s.state, out = [];
    function metric(name, type, help) {
        out.push('# HELP ' + name + ' ' + help, '# TYPE ' + name + ' ' + type);
    }
    metric('phoenix_gateway_requests_total', 'counter',
           'Requests the API server answered, by model (empty: none) and status.');
    for (var model in state.requests) {
        for (var code in state.requests[model]) {
            out.push('phoenix_gateway_requests_total{model=' + label(model) + ',status='
                     + label(code) + '} ' + state.requests[model][code]);
        }
    }
    metric('phoenix_gateway_upstream_response_seconds', 'summary',
           'Time spent waiting on model servers (all attempts of a request), by model.');
    for (var m in state.upstream) {
        out.push('phoenix_gateway_upstream_response_seconds_sum{model=' + label(m) + '} '
                 + state.upstream[m][0].toFixed(3));
        out.push('phoenix_gateway_upstream_response_seconds_count{model=' + label(m) + '} '
                 + state.upstream[m][1]);
    }
    metric('phoenix_gateway_tokens_total', 'counter',
           'Tokens the model servers reported in their answers (usage), by model, API key '
           + '(empty: none) and type.');
    for (var tm in state.tokens) {
        for (var key in state.tokens[tm]) {
            var t = state.tokens[tm][key], base = '{model=' + label(tm) + ',key=' + label(key);
            out.push('phoenix_gateway_tokens_total' + base + ',type="prompt"} ' + t[0]);
            out.push('phoenix_gateway_tokens_total' + base + ',type="completion"} ' + t[1]);
        }
    }
    metric('phoenix_gateway_usage_requests_total', 'counter',
           'Answers that reported their token usage, by model and API key.');
    for (var um in state.tokens) {
        for (var uk in state.tokens[um]) {
            out.push('phoenix_gateway_usage_requests_total{model=' + label(um) + ',key='
                     + label(uk) + '} ' + state.tokens[um][uk][2]);
        }
    }
    var attempts = [], ups = [];
    s.models.forEach(function(mod) {
        mod.backends.forEach(function(b) {
            var labels = '{model=' + label(mod.id) + ',backend=' + label(b.address);
            attempts.push('phoenix_gateway_backend_attempts_total' + labels
                          + ',outcome="answered"} ' + b.answered);
            attempts.push('phoenix_gateway_backend_attempts_total' + labels
                          + ',outcome="failed"} ' + b.failed);
            ups.push('phoenix_gateway_backend_up' + labels + '} '
                     + (b.state === 'up' || b.state === 'unknown' ? 1 : 0));
        });
    });
    metric('phoenix_gateway_backend_attempts_total', 'counter',
           'Attempts to reach each model server, by outcome.');
    out = out.concat(attempts);
    metric('phoenix_gateway_backend_up', 'gauge',
           '1 unless the last attempt to the model server failed.');
    out = out.concat(ups);
    metric('phoenix_gateway_connections', 'gauge', 'Client connections by state.');
    for (var st in s.connections) {
        out.push('phoenix_gateway_connections{state=' + label(st) + '} ' + s.connections[st]);
    }
    metric('phoenix_gateway_info', 'gauge', 'Version and configuration id.');
    out.push('phoenix_gateway_info{version=' + label(s.version) + ',config=' + label(s.config)
             + '} 1');
    metric('phoenix_gateway_metrics_pending_bytes', 'gauge',
           'Metrics log bytes not counted yet (the next reads catch up).');
    out.push('phoenix_gateway_metrics_pending_bytes ' + s.metrics_pending_bytes);
    if (s.uptime_s !== null) {
        metric('phoenix_gateway_uptime_seconds', 'gauge', 'Seconds since nginx started.');
        out.push('phoenix_gateway_uptime_seconds ' + s.uptime_s);
    }
    r.headersOut['Content-Type'] = 'text/plain; version=0.0.4';
    r.return(200, out.join('\n') + '\n');
}

function page(r) {
    r.headersOut['Content-Type'] = 'text/html; charset=utf-8';
    r.headersOut['Cache-Control'] = 'no-store';
    r.return(200, page_html);
}

export default {status, prometheus, page};
