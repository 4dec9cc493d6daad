// Assertions on responses of lib/http.mjs's request() (and media's raw()): status, the JSON
// error shape of ../shared/API.md ("Conventions": {"error": {"code", "message", "field"?}}),
// and how a response is shown in a failure message.
import assert from 'node:assert/strict';

export const isJson = (res) => /^application\/json\b/i.test(res.headers['content-type'] || '');

// The checks below, all showing a response the same way. headers: every response header in
// the message instead of the content type alone (media.test.mjs: Range, caching, redirects
// and Content-Disposition are what its failures are about).
export function responseChecks({ headers = false } = {}) {
  const show = (res) => `status ${res.status}, ${headers
    ? `headers ${JSON.stringify(res.headers)}`
    : `content-type ${res.headers?.['content-type']}`}, body ${String(res.text ?? '').slice(0, 400)}`;

  // code undefined: any code (the status and the shape are what is checked);
  // field given: error.field must be it.
  function assertError(res, status, code, field) {
    assert.equal(res.status, status, show(res));
    assert.ok(isJson(res), `expected JSON error: ${show(res)}`);
    if (code !== undefined) assert.equal(res.json?.error?.code, code, show(res));
    assert.equal(typeof res.json?.error?.message, 'string', `error.message missing: ${show(res)}`);
    if (field !== undefined) assert.equal(res.json.error.field, field, `error.field: ${show(res)}`);
  }
  // returns res, so that a call can be wrapped: assertStatus(await api(...), 201, 'what').json
  function assertStatus(res, status, what = '') {
    assert.equal(res.status, status, `${what} ${show(res)}`);
    return res;
  }
  function assertOneOf(res, statuses, what = '') {
    assert.ok(statuses.includes(res.status), `${what} expected one of ${statuses}: ${show(res)}`);
    return res;
  }
  // any 2xx (set-up steps where API.md's exact status is not what the test is about)
  function ok2xx(res, what) {
    assert.ok(res.status >= 200 && res.status < 300, `${what}: ${show(res)}`);
    return res;
  }
  return { show, assertError, assertStatus, assertOneOf, ok2xx };
}

export const { show, assertError, assertStatus, assertOneOf, ok2xx } = responseChecks();
