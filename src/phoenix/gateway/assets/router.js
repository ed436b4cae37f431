// Phoenix gateway: OpenAI-compatible model router (njs 0.7.x, nginx js_content).
//
// Reads the JSON body's "model" and hands the request to that model's upstream with
// r.internalRedirect('@model_...'); the body stays in memory (client_body_buffer_size ==
// client_max_body_size), so r.requestText is always available and reaches the upstream.
// The model table is rendered by Phoenix from the inventory into phoenix_models.js.
import table from 'phoenix_models.js';

function send(r, status, obj) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, JSON.stringify(obj) + '\n');
}

function fail(r, status, message, type, code, param) {
    send(r, status, {
        error: {message: message, type: type, param: param || null, code: code || null}
    });
}

function available() {
    var names = Object.keys(table.models);
    return names.length ? names.join(', ') : '(none)';
}

function route(r) {
    if (r.method !== 'POST') {
        r.headersOut['Allow'] = 'POST';
        return fail(r, 405, 'use POST for ' + r.uri, 'invalid_request_error', 'method_not_allowed');
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
    var body;
    try {
        body = JSON.parse(text);
    } catch (e) {
        return fail(r, 400, 'malformed JSON in request body: ' + e.message,
                    'invalid_request_error', 'invalid_json');
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
        return fail(r, 400, 'request body must be a JSON object', 'invalid_request_error',
                    'invalid_body');
    }
    var model = body.model;
    if (typeof model !== 'string' || model.length === 0) {
        return fail(r, 400, 'you must provide a model parameter', 'invalid_request_error',
                    'missing_model', 'model');
    }
    if (!Object.prototype.hasOwnProperty.call(table.models, model)) {
        return fail(r, 404, 'The model `' + model + '` does not exist. Available models: '
                    + available(), 'invalid_request_error', 'model_not_found', 'model');
    }
    r.internalRedirect(table.models[model]);
}

function models(r) {
    send(r, 200, {object: 'list', data: table.list});
}

function health(r) {
    send(r, 200, {
        status: 'ok', service: 'phoenix-gateway', version: table.version, mode: table.mode,
        config: table.config, routes: table.routes, models: Object.keys(table.models)
    });
}

export default {route, models, health};
