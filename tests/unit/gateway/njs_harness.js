// Runs the gateway's njs handlers (router.js, metrics.js: the shipped files) in Debian's
// njs interpreter, the same engine version as the gateway's nginx module, against fake
// nginx requests. Driven by tests/unit/gateway/njs.py, which copies this file, the rendered
// njs/ directory and cases.js (the requests, as JSON) into one folder.
//
// Each case names a handler ('router.parse', 'metrics.prometheus', ...) and the request's
// method, uri, headersIn (canonical names), requestText (or tooLarge: reading it throws,
// as nginx does for a body that did not fit in memory) and variables. Like nginx's
// `js_set $phx_key router.keyName`, $phx_key is computed when the case does not give it.
// Writes a JSON list to cases.out, one entry per case: what the handler did (r.return,
// r.internalRedirect), what it returned (a js_set handler's value), the response headers
// and variables after it, or the exception it
// threw (nginx: a 500). (A file: console.log cuts long lines.)
import fs from 'fs';
import router from 'router.js';
import metrics from 'metrics.js';
import cases from 'cases.js';

var modules = {router: router, metrics: metrics};

function request(c, out) {
    var r = {
        method: c.method, uri: c.uri, headersIn: c.headersIn, headersOut: {},
        variables: c.variables,
        return: function(status, body) {
            if (out.status !== null || out.redirect !== null) {
                throw new Error('handler answered twice');
            }
            out.status = status;
            out.body = body === undefined ? null : String(body);
        },
        internalRedirect: function(target) {
            if (out.status !== null || out.redirect !== null) {
                throw new Error('handler answered twice');
            }
            out.redirect = target;
        }
    };
    if (c.tooLarge) {
        Object.defineProperty(r, 'requestText', {
            get: function() { throw new Error('request body is in a file'); }
        });
    } else {
        r.requestText = c.requestText;
    }
    return r;
}

function run(c) {
    var out = {status: null, body: null, redirect: null, headers: null, variables: null,
               value: null, error: null};
    var parts = c.handler.split('.');
    try {
        var r = request(c, out);
        if (!('phx_key' in r.variables)) {
            r.variables.phx_key = router.keyName(r);
        }
        var value = modules[parts[0]][parts[1]](r);  // a js_set handler's variable
        out.value = value === undefined ? null : value;
        out.headers = r.headersOut;
        out.variables = r.variables;
    } catch (e) {
        out.error = String(e) + (e.stack ? '\n' + e.stack : '');
    }
    return out;
}

fs.writeFileSync(cases.out, JSON.stringify(cases.requests.map(run)));
