// Phoenix gateway: what the gateway sees — /phoenix/status (JSON), /metrics (Prometheus)
// and the status page — counted exactly across nginx workers, with nothing in the request
// path but one access-log line.
//
// njs 0.7.9 (Debian 12) has no shared dictionary and no state between requests, so the
// counts come from nginx itself: every API request appends one line to the metrics log
// (one write() per line, O_APPEND, so lines from all workers interleave whole). A scrape
// reads the lines added since the last checkpoint, adds them to the checkpoint's counts
// and writes the new checkpoint (offset + counts) atomically. Two scrapes at once each
// write a consistent checkpoint (counts always match their offset), so any of them may
// win. A rotated log (other inode, or shorter) restarts the counts (a counter reset, as
// Prometheus expects after a restart).
//
// Line: msec \t model \t status \t upstream_addr \t upstream_status \t upstream_header_time
//       \t upstream_response_time   (the upstream_* lists are ", "-separated per attempt)
import fs from 'fs';
import table from 'phoenix_models.js';
import page_html from 'status_page.js';

var CHUNK = 1 << 20;
var FAIL_TIMEOUT_S = 10;

function fresh(ino) {
    return {ino: ino, offset: 0, requests: {}, upstream: {}, backends: {}};
}

function loadState(ino) {
    try {
        var state = JSON.parse(fs.readFileSync(table.metrics.state));
        if (state.ino === ino) {
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
        // read-only: the next scrape counts from the last checkpoint again (still exact)
    }
}

function list(field) {
    return field === '-' || field === '' ? [] : field.split(/, | : /);
}

function add(state, line) {
    var f = line.split('\t');
    if (f.length < 7) {
        return;
    }
    var msec = Number(f[0]), status = f[2];
    // Only served models are labels: a name a client made up (answered 404) is not.
    var model = Object.prototype.hasOwnProperty.call(table.backends, f[1]) ? f[1] : '';
    var byModel = state.requests[model] || (state.requests[model] = {});
    byModel[status] = (byModel[status] || 0) + 1;
    var addrs = list(f[3]), headers = list(f[5]), times = list(f[6]);
    if (times.length && times[times.length - 1] !== '-') {
        var up = state.upstream[model] || (state.upstream[model] = [0, 0]);
        for (var t = 0; t < times.length; t++) {
            up[0] += Number(times[t]) || 0;
        }
        up[1] += 1;
    }
    for (var i = 0; i < addrs.length; i++) {
        if (addrs[i].indexOf(':') < 0) {
            continue;  // "no live upstreams": nginx names the upstream, not a backend
        }
        var b = state.backends[addrs[i]] || (state.backends[addrs[i]] = [0, 0, 0, 0]);
        // [answered, failed, last answered msec, last failed msec]; an attempt that got
        // no response header (refused, timed out, reset) failed, whatever the status.
        if (headers[i] === undefined || headers[i] === '-') {
            b[1] += 1;
            b[3] = msec;
        } else {
            b[0] += 1;
            b[2] = msec;
        }
    }
}

// The counts up to the end of the metrics log, checkpointed.
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
        var buf = Buffer.alloc(CHUNK), rest = '';
        while (state.offset + rest.length < st.size) {
            var n = fs.readSync(fd, buf, 0, CHUNK, state.offset + rest.length);
            if (n <= 0) {
                break;
            }
            var text = rest + buf.toString('utf8', 0, n);
            var end = text.lastIndexOf('\n');
            if (end < 0) {
                rest = text;
                continue;
            }
            var lines = text.slice(0, end).split('\n');
            for (var i = 0; i < lines.length; i++) {
                add(state, lines[i]);
            }
            state.offset += Buffer.byteLength(text.slice(0, end + 1));
            rest = text.slice(end + 1);
        }
        saveState(state);
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
                                                  : null});
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
        requests: total, models: models, state: state
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
