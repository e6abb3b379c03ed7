import assert from 'node:assert/strict';
import { it } from 'node:test';
import { classify } from '../../../src/proxy/classify.js';
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
