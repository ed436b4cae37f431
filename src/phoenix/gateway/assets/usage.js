// Phoenix gateway: the model locations' answer filters (js_header_filter usage.headers,
// js_body_filter usage.scan).
//
// Usage: every chunk is passed on at once, unchanged; a chunk that holds a JSON "usage"
// object — a non-streamed answer's, or the last event of a stream whose client asked
// stream_options.include_usage — sets $phx_usage (js_var) to "<prompt tokens> <completion
// tokens>", which the metrics log line carries (metrics.js counts it per model and per
// key). No body is kept: a chunk is searched for the key, and only a "usage" object cut by
// a chunk boundary (at most MAX_PENDING bytes) or a cut key waits for the next chunk. Every
// answer that can carry usage is searched to its end (the last usage counts); one that
// cannot (not JSON or an event stream, or an error) is passed on unsearched.
//
// Errors in one voice: a model server's error that is not JSON (an HTML or text page from
// its HTTP layer, such as Python's 431 for too many headers) is replaced by an OpenAI-style
// JSON error with the same status. A model server's own JSON errors pass untouched.
//
// njs gives each request its own VM: `pending` and `mode` are per request.
var MAX_PENDING = 1024;
var pending = '';
var mode = 'scan';  // 'scan' for usage, 'pass' (nothing to look for), or 'replace'

function headers(r) {
    var type = String(r.headersOut['Content-Type'] || '').toLowerCase();
    var json = type.indexOf('json') >= 0;
    if (r.status >= 400 && !json) {
        mode = 'replace';
        r.headersOut['Content-Type'] = 'application/json';
        delete r.headersOut['Content-Length'];
    } else if (r.status >= 300 || !(json || type.indexOf('text/event-stream') >= 0)) {
        mode = 'pass';
    }
}

// The answer that replaces a model server's error page (its body is dropped).
function errorPage(r) {
    var model = r.variables.phx_model || '';
    return JSON.stringify({error: {
        message: "the server for model '" + model + "' answered " + r.status
                 + ' with a page that is not JSON',
        type: r.status >= 500 ? 'server_error' : 'invalid_request_error',
        param: 'model',
        code: 'upstream_http_' + r.status
    }}) + '\n';
}

function scan(r, data, flags) {
    if (mode === 'replace') {
        if (flags.last) {
            r.sendBuffer(errorPage(r), flags);
        }
        return;
    }
    r.sendBuffer(data, flags);
    if (mode === 'pass') {
        return;
    }
    var s = pending ? pending + data : data;
    var i = s.lastIndexOf('"usage"');
    if (i < 0) {
        pending = s.length > 8 ? s.slice(-8) : s;  // '"usage"' cut by the chunk boundary
        return;
    }
    var end = s.indexOf('}', i);
    if (end < 0) {
        pending = s.length - i < MAX_PENDING ? s.slice(i) : '';
        return;
    }
    pending = '';
    // Regexes on the usage object's slice: position arithmetic on the chunk (indexOf, then
    // s[i]) lost the counts of llama.cpp's non-streamed answers behind the real gateway.
    var u = s.slice(i, end);
    var prompt = /"prompt_tokens"\s*:\s*([0-9]+)/.exec(u);
    var completion = /"completion_tokens"\s*:\s*([0-9]+)/.exec(u);
    if (prompt || completion) {
        r.variables.phx_usage = (prompt ? prompt[1] : '0') + ' '
            + (completion ? completion[1] : '0');
    }
}

export default {headers, scan};
