import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classify, routeOf } from '../../../src/proxy/classify.js';
import { normalizePath } from '../../../src/proxy/path-normalize.js';
import { uploadOf } from '../../../src/registry/upload-path.js';

it('classifies requests as Harbor routes them', () => {
  const cases: Array<[string, string]> = [
    ['/service/token', 'token'],
    ['/v2/', 'v2'],
    ['/v2', 'v2'],
    ['/v2/library/nginx/manifests/latest', 'v2'],
    ['/v2/library/nginx/blobs/sha256:abc', 'v2'],
    ['/v2/library/nginx/blobs/uploads/', 'upload'],
    ['/v2/a/b/c/blobs/uploads/0b6f-uuid', 'upload'],
    ['/v2/library/nginx/tags/list', 'v2'],
    ['/v2/_catalog', 'v2'],
    ['/api/v2.0/projects', 'ui'],
    ['/c/login', 'ui'],
    ['/', 'ui'],
    ['/harbor/projects', 'ui'],
    ['/service/notifications', 'other'],
    ['/chartrepo/library/index.yaml', 'other'],
  ];
  for (const [path, route] of cases) assert.equal(classify(path), route, path);
});

it('reads the repository and upload id of an upload path', () => {
  assert.deepEqual(uploadOf('/v2/library/nginx/blobs/uploads/'), { repository: 'library/nginx' });
  assert.deepEqual(uploadOf('/v2/a/b/blobs/uploads/7d0c'), { repository: 'a/b', uuid: '7d0c' });
  assert.equal(uploadOf('/v2/a/blobs/uploads/7d0c/extra'), undefined);
  assert.equal(uploadOf('/v2/blobs/uploads/'), undefined);
});

describe('paths are routed on their normalized form (issue 10)', () => {
  const refused = (raw: string): string | undefined => routeOf(raw).refused;

  it('normalizes as RFC 3986 says: unreserved escapes decoded, slashes merged, dot segments resolved, %2F kept', () => {
    const cases: Array<[string, string]> = [
      ['/v2/', '/v2/'],
      ['/v2/../api/v2.0/users', '/api/v2.0/users'],
      ['//service/token', '/service/token'],
      ['/%2e%2e/v2/', '/v2/'],
      ['/%76%32/library/%61pp/manifests/%7E1', '/v2/library/app/manifests/~1'],
      ['/a/b/./c/../d/', '/a/b/d/'],
      ['/a/b/..', '/a/'],
      ['/a/.', '/a/'],
      ['/..', '/'],
      ['/v2/library%2Fdemo/blobs/uploads/abc', '/v2/library%2Fdemo/blobs/uploads/abc'],
      ['/v2/a%2fb/%3A%40', '/v2/a%2fb/%3A%40'],
      ['/api/v2.0/projects/p/repositories/a%252Fb', '/api/v2.0/projects/p/repositories/a%252Fb'],
      ['/x/%zz', '/x/%25zz'],
      ['*', '*'],
    ];
    for (const [raw, normal] of cases) assert.equal(normalizePath(raw), normal, raw);
  });

  it('/v2/../api/v2.0/users is refused: harbor-lb read v2, Harbor reads the users API', () => {
    assert.match(refused('/v2/../api/v2.0/users') ?? '', /dot segment/);
  });

  it('//service/token is refused: harbor-lb read the portal, Harbor (merge_slashes) reads the token service', () => {
    assert.equal(classify('//service/token'), 'ui');
    assert.match(refused('//service/token') ?? '', /another route once normalized \(\/service\/token\)/);
  });

  it('/%2e%2e/v2/ is refused: encoded dots are dot segments to nginx and Go', () => {
    assert.match(refused('/%2e%2e/v2/') ?? '', /dot segment/);
    assert.match(refused('/v2/.%2E/api/') ?? '', /dot segment/);
    assert.match(refused('/v2/a%2F..%2Fb/manifests/x') ?? '', /dot segment/, 'dots that only a slash-decoding reader sees');
  });

  it('/v2/library%2Fdemo/blobs/uploads/abc is refused: distribution and nginx decode %2F into a separator', () => {
    assert.match(refused('/v2/library%2Fdemo/blobs/uploads/abc') ?? '', /encoded slash/);
    assert.match(refused('/v2/a%2Fblobs%2Fuploads%2F') ?? '', /encoded slash/, 'v2 to harbor-lb, an upload start to the node');
    assert.match(refused('/service%2Ftoken') ?? '', /encoded slash/);
    assert.match(refused('/service/notifications%2Fx') ?? '', /encoded slash/);
  });

  it('refuses malformed escapes and route-changing encodings; forwards same-route normalizations', () => {
    assert.match(refused('/v2/%zz') ?? '', /malformed/);
    assert.match(refused('/v2/%4') ?? '', /malformed/);
    assert.match(refused('/%76%32/') ?? '', /another route/);
    assert.deepEqual(routeOf('/v2/library//app/manifests/%6catest'), { route: 'v2', path: '/v2/library/app/manifests/latest' });
    assert.deepEqual(routeOf('/v2/a//b/blobs/uploads/u-1'), { route: 'upload', path: '/v2/a/b/blobs/uploads/u-1' });
    assert.deepEqual(routeOf('/harbor/projects/1/repositories/library%2Fnginx'), { route: 'ui', path: '/harbor/projects/1/repositories/library%2Fnginx' }, 'UI deep links keep %2F');
    assert.deepEqual(routeOf('/api/v2.0/projects/p/repositories/a%252Fb/artifacts'), { route: 'ui', path: '/api/v2.0/projects/p/repositories/a%252Fb/artifacts' });
    assert.deepEqual(routeOf('/service/token'), { route: 'token', path: '/service/token' });
  });
});
