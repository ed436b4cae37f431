// Phoenix gateway: the model server's own token usage, from its answer into the metrics log.
//
// js_body_filter of the model locations. Every chunk is passed on at once, unchanged; a
// chunk that holds a JSON "usage" object — a non-streamed answer's, or the last event of
// a stream whose client asked stream_options.include_usage — sets $phx_usage (js_var) to
// "<prompt tokens> <completion tokens>", which the metrics log line carries (metrics.js
// counts it per model and per key). No body is kept: a chunk is searched for the key, and
// only a "usage" object cut by a chunk boundary (at most MAX_PENDING bytes) or a cut key
// waits for the next chunk. njs gives each request its own VM: `pending` is per request.
var MAX_PENDING = 1024;
var pending = '';

function scan(r, data, flags) {
    r.sendBuffer(data, flags);
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
    var u = s.slice(i, end);
    var prompt = /"prompt_tokens"\s*:\s*(\d+)/.exec(u);
    var completion = /"completion_tokens"\s*:\s*(\d+)/.exec(u);
    if (prompt || completion) {
        r.variables.phx_usage = (prompt ? prompt[1] : '0') + ' '
            + (completion ? completion[1] : '0');
    }
}

export default {scan};
