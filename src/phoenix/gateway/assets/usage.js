// Phoenix gateway: the model locations' answer filters (js_header_filter usage.headers,
// js_body_filter usage.scan).
//
// Usage: every chunk is passed on at once, unchanged; a chunk that holds a JSON "usage"
// object — a non-streamed answer's, or the last event of a stream whose client asked
// stream_options.include_usage — sets $phx_usage (js_var) to "<prompt tokens> <completion
// tokens>", which the metrics log line carries (metrics.js counts it per model and per
// key). No body is kept: a chunk is searched for the key, and only a "usage" object cut by
// a chunk boundary (at most MAX_PENDING bytes) or a cut key waits for the next chunk. Once
// a JSON answer's usage is found, or for an answer that cannot carry one (not JSON or an
// event stream, or an error), the filter steps aside (r.done()) and nginx passes the rest
// on by itself; a stream is searched to its end (the last usage counts).
//
// Errors in one voice: a model server's error that is not JSON (an HTML or text page from
// its HTTP layer, such as Python's 431 for too many headers) is replaced by an OpenAI-style
// JSON error with the same status. A model server's own JSON errors pass untouched.
//
// njs gives each request its own VM: `pending` and `mode` are per request.
var MAX_PENDING = 1024;
var pending = '';
var mode = 'scan';  // 'scan' for usage, 'pass' (nothing to look for), or 'replace'
var stream = false;  // an event stream: the last usage counts (vLLM may send one per event)

function headers(r) {
    var type = String(r.headersOut['Content-Type'] || '').toLowerCase();
    var json = type.indexOf('json') >= 0;
    if (r.status >= 400 && !json) {
        mode = 'replace';
        r.headersOut['Content-Type'] = 'application/json';
        delete r.headersOut['Content-Length'];
    } else {
        stream = type.indexOf('text/event-stream') >= 0;
        if (r.status >= 300 || !(json || stream)) {
            mode = 'pass';
        }
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
        r.done();
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
    var prompt = count(s, '"prompt_tokens"', i, end);
    var completion = count(s, '"completion_tokens"', i, end);
    if (prompt >= 0 || completion >= 0) {
        r.variables.phx_usage = Math.max(prompt, 0) + ' ' + Math.max(completion, 0);
        if (!stream) {
            r.done();
        }
    }
}

// The number after `name` and its colon within s[from, end), or -1. Plain string search
// and parseInt: a regex per count cost more than the rest of the filter together.
function count(s, name, from, end) {
    var i = s.indexOf(name, from);
    if (i < 0 || i > end) {
        return -1;
    }
    i += name.length;
    while (i < end && (s[i] === ' ' || s[i] === '\n' || s[i] === '\t' || s[i] === '\r')) {
        i++;
    }
    if (s[i] !== ':') {
        return -1;
    }
    var n = parseInt(s.slice(i + 1, Math.min(end, i + 24)), 10);
    return n >= 0 ? n : -1;
}

export default {headers, scan};
