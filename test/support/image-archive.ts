import { join } from 'node:path';
import { makeOciImage } from '../../src/demo/oci-image.js';
import { Skopeo } from './skopeo.js';

/**
 * Makes an image with random layers of `layerSizes` bytes and writes it as a docker-archive
 * tagged `ref` (what `docker load` and `podman load` read): the e2e machines have no registry to
 * pull a base image from. `name` keeps several images of one test apart inside `dir`.
 */
export async function makeImageArchive(dir: string, name: string, layerSizes: number[], ref: string): Promise<string> {
  const image = makeOciImage(join(dir, `image-${name}`), layerSizes);
  const skopeo = new Skopeo(dir);
  const file = join(skopeo.writableDir(`archive-${name}`), 'image.tar');
  const made = await skopeo.run(['copy', `oci:${image.dir}:${image.tag}`, `docker-archive:${file}:${ref}`]);
  if (made.code !== 0) throw new Error(`skopeo could not write the docker-archive of ${ref}: ${made.stderr}`);
  return file;
}

/** What runs `load -i FILE` in a container engine: docker's or podman's CLI. */
export type EngineCli = (args: string[]) => Promise<{ code: number; stderr: string }>;

/** Makes an image as makeImageArchive does and loads it into the engine; throws with the engine's words if it refuses. */
export async function loadImageArchive(engine: EngineCli, dir: string, name: string, layerSizes: number[], ref: string): Promise<void> {
  const file = await makeImageArchive(dir, name, layerSizes, ref);
  const loaded = await engine(['load', '-i', file]);
  if (loaded.code !== 0) throw new Error(`load of ${ref} failed: ${loaded.stderr}`);
}
