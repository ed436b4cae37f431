// Phoenix gateway: OpenAI-compatible model router (njs 0.7.x, nginx js_content).
//
// route(): the model endpoints' handler. js_content has nginx read the whole body into
// memory first (client_body_buffer_size == client_max_body_size); route() never touches
// it (turning 100 KB into a JS string costs more than proxying it) and hands the request
// to @phx_route, where nginx picks the upstream from the body's "model" natively.
// parse(): @phx_route's fallback for everything it cannot route: reads the body's
// top-level model with the same rules as nginx (bodyrules.py), answers the precise
// 400/404, or hands a routable request to '@model_...' itself.
// The model table is rendered by Phoenix from the inventory into phoenix_models.js.
import table from 'phoenix_models.js';
import crypto from 'crypto';

function send(r, status, obj) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, JSON.stringify(obj) + '\n');
}

function fail(r, status, message, type, code, param) {
    send(r, status, {
        error: {message: message, type: type, param: param || null, code: code || null}
    });
}

// API keys (only when the inventory declares some; table.keys is null otherwise).
// keyName() is `js_set $phx_key`: the name of the key the request carries, or ''.
function keyName(r) {
    if (!table.keys) {
        return '';
    }
    var key = table.keys[bearerHash(r)];
    return key ? key.name : '';
}

// operatorName() is `js_set $phx_operator` (only with operator keys, only read by the
// status endpoints): the name of the operator key the request carries, or ''.
function operatorName(r) {
    return (table.operators && table.operators[bearerHash(r)]) || '';
}

// The SHA-256 (hex) of the request's bearer token, or '' without one.
function bearerHash(r) {
    var auth = r.headersIn['Authorization'] || '';
    var m = /^Bearer[ \t]+([^ \t]+)[ \t]*$/i.exec(auth);
    return m ? crypto.createHash('sha256').update(m[1]).digest('hex') : '';
}

// The key entry of the request ({name, models}); null after answering 401. With no keys
// declared, every request may use every model.
function authorized(r) {
    if (!table.keys) {
        return {name: '', models: null};
    }
    var name = r.variables.phx_key;
    for (var hash in table.keys) {
        if (table.keys[hash].name === name) {
            return table.keys[hash];
        }
    }
    var given = r.headersIn['Authorization'];
    fail(r, 401, given ? 'Incorrect API key provided.'
                       : 'You didn\'t provide an API key. Use the header '
                         + '"Authorization: Bearer <key>".',
         'invalid_request_error', 'invalid_api_key');
    return null;
}

function may_use(key, model) {
    return key.models === null || key.models.indexOf(model) >= 0;
}

function visible(key) {
    return table.list.filter(function(m) { return may_use(key, m.id); });
}

function available(key) {
    var names = visible(key).map(function(m) { return m.id; });
    return names.length ? names.join(', ') : '(none)';
}

function allowed(r) {
    if (r.method === 'POST') {
        return true;
    }
    r.headersOut['Allow'] = 'POST';
    fail(r, 405, 'use POST for ' + r.uri, 'invalid_request_error', 'method_not_allowed');
    return false;
}

function route(r) {
    if (allowed(r)) {
        r.internalRedirect('@phx_route');
    }
}

// Multipart endpoints (audio transcriptions, image edits): `model` is a form field.
function routeForm(r) {
    if (allowed(r)) {
        r.internalRedirect(multipart(r) ? '@phx_route_form' : '@phx_route');
    }
}

// Any other POST under /v1/ that names its model is routed like the known endpoints;
// other methods there have no route.
function routeAny(r) {
    if (r.method !== 'POST') {
        if (!authorized(r)) {
            return;
        }
        return fail(r, 404, 'no route for this path', 'invalid_request_error', 'not_found');
    }
    routeForm(r);
}

function multipart(r) {
    var type = r.headersIn['Content-Type'] || '';
    return type.toLowerCase().indexOf('multipart/form-data') === 0;
}

// The body rules (bodyrules.py): the same PCRE source nginx's native route runs, so njs
// reads the top-level `model` exactly as nginx and a JSON parser do. The body is never
// turned into a JavaScript object (JSON.parse of a body of many small objects takes ~35x
// its size), only matched. Compiled on first use, never at module level: njs sets the
// module up again for every request, and compiling them there cost ~400 us a request.
var RULES = null;
function rules() {
    if (RULES === null) {
        RULES = {
            object: new RegExp(table.rules.object),
            first: new RegExp(table.rules.first),
            second: new RegExp(table.rules.second),
            form: new RegExp(table.rules.form, 'i'),
            formTwice: new RegExp(table.rules.formTwice, 'i')
        };
    }
    return RULES;
}
// Small enough to JSON.parse for the parser's own message on malformed JSON.
var EXPLAIN_MAX = 64 * 1024;

function tooComplex(r) {
    fail(r, 400, 'request body is nested too deeply or too complex for the gateway to read',
         'invalid_request_error', 'body_too_complex');
}

function invalid(r, text) {
    var why = 'malformed JSON in request body';
    if (text.length <= EXPLAIN_MAX) {
        try {
            var value = JSON.parse(text);
            return fail(r, 400, 'request body must be a JSON object' + (Array.isArray(value)
                        ? ', not an array' : ''), 'invalid_request_error', 'invalid_body');
        } catch (e) {
            why += ': ' + e.message;
        }
    }
    fail(r, 400, why, 'invalid_request_error', 'invalid_json');
}

function ambiguous(r, what) {
    fail(r, 400, what + ': a model server would take one of them and the gateway cannot '
         + 'tell which; send `model` once', 'invalid_request_error', 'ambiguous_model',
         'model');
}

// The model a multipart body names in its one `model` field.
function formModel(r, key, text) {
    if (rules().formTwice.test(text)) {
        return ambiguous(r, 'the form names the field `model` more than once');
    }
    var field = rules().form.exec(text);
    send_to(r, key, field ? field[1] : undefined);
}

// The model a JSON body names in its one top-level `model` key.
function jsonModel(r, key, text) {
    // nginx's JIT match says whether the body is a JSON object (njs's own PCRE, without
    // JIT, would take seconds on the nesting nginx refuses); computed here without nginx.
    var shape = r.variables.phx_json_object;
    if (shape === undefined) {
        shape = rules().object.test(text) ? '1' : '0';
    }
    if (shape !== '1') {
        return shape === '0' ? invalid(r, text) : tooComplex(r);
    }
    var m = rules().first.exec(text);
    if (!m) {
        return send_to(r, key, undefined);
    }
    if (rules().second.test(text)) {
        return ambiguous(r, 'the request body names `model` more than once at its top level');
    }
    var name = JSON.parse(m[1]);
    if (name !== 'model') {
        return ambiguous(r, 'the request body names its model `' + name + '`, not `model`');
    }
    var value = m[2].charAt(0) === '"' ? JSON.parse(m[2]) : undefined;
    send_to(r, key, value);
}

function parse(r) {
    if (!allowed(r)) {
        return;
    }
    var key = authorized(r);
    if (!key) {
        return;
    }
    var text;
    try {
        text = r.requestText;
    } catch (e) {
        // Only when the body did not fit in memory, i.e. it is over the limit.
        return fail(r, 413, 'request body too large', 'invalid_request_error', 'body_too_large');
    }
    if (text === undefined || text === null || text.length === 0) {
        return fail(r, 400, 'request body is empty; expected a JSON object with "model"',
                    'invalid_request_error', 'invalid_body');
    }
    try {
        return multipart(r) ? formModel(r, key, text) : jsonModel(r, key, text);
    } catch (e) {
        if (/limit|memory/.test(e.message)) {
            return tooComplex(r);  // PCRE's match limit or stack: not a body to route
        }
        throw e;
    }
}

function send_to(r, key, model) {
    if (typeof model !== 'string' || model.length === 0) {
        return fail(r, 400, 'you must provide a model parameter', 'invalid_request_error',
                    'missing_model', 'model');
    }
    if (!Object.prototype.hasOwnProperty.call(table.models, model) || !may_use(key, model)) {
        // A name that is not UTF-8 (the body's bytes as sent) is echoed decoded, each
        // invalid byte as U+FFFD: an answer is always valid UTF-8 JSON.
        return fail(r, 404, 'The model `' + utf8(model) + '` does not exist or you do not have '
                    + 'access to it. Available models: ' + available(key),
                    'invalid_request_error', 'model_not_found', 'model');
    }
    // Named in the 502 answer if the model's server does not respond (JSON-escaped).
    r.variables.phx_model = JSON.stringify(model).slice(1, -1);
    r.internalRedirect(table.models[model]);
}

function utf8(s) {
    return Buffer.from(s).toString();
}

function models(r) {
    var key = authorized(r);
    if (key) {
        send(r, 200, {object: 'list', data: visible(key)});
    }
}

// GET /v1/models/{id}: the id is the rest of the path (model names may contain '/').
function model(r) {
    var id = r.uri.slice('/v1/models/'.length);
    var key = authorized(r);
    if (!key) {
        return;
    }
    if (r.method !== 'GET') {
        r.headersOut['Allow'] = 'GET';
        return fail(r, 405, 'use GET for ' + r.uri, 'invalid_request_error',
                    'method_not_allowed');
    }
    var list = visible(key);
    for (var i = 0; i < list.length; i++) {
        if (list[i].id === id) {
            return send(r, 200, list[i]);
        }
    }
    fail(r, 404, 'The model `' + utf8(id) + '` does not exist', 'invalid_request_error',
         'model_not_found', 'model');
}

function health(r) {
    send(r, 200, {
        status: 'ok', service: 'phoenix-gateway', version: table.version, mode: table.mode,
        config: table.config, routes: table.routes, models: Object.keys(table.models)
    });
}

export default {route, routeForm, routeAny, parse, models, model, health, keyName,
                operatorName};
