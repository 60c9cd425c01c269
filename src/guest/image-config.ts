/**
 * What an image built from a container image (`mkimage --from`) records about its source, so that
 * a guest can run it as a container runtime would and `inspect` can say where it came from.
 *
 * Inside the filesystem (read by the guest's init, /.mkimage/init):
 *
 *   /.mkimage/config.json   GuestConfigFile below, UTF-8 JSON, mode 0444, owner 0:0
 *   /.mkimage/init          the static init that runs the entrypoint (mode 0755, owner 0:0)
 *
 * The config's fields are the OCI image config's (image-spec config.md, `config` object) with the
 * spec's own names, so that a reader can compare them with `skopeo inspect --config` output.
 */

/** The directory mkimage owns in an image built with --from (absolute, inside the guest). */
export const GUEST_DIR = '/.mkimage';
export const GUEST_CONFIG_PATH = '/.mkimage/config.json';
export const GUEST_INIT_PATH = '/.mkimage/init';

/** The part of an OCI image config a runtime uses to start the container. */
export interface ImageConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  /** "NAME=value" strings, in order. */
  Env?: string[];
  WorkingDir?: string;
  /** "uid", "uid:gid", "name" or "name:group", as in the OCI spec. */
  User?: string;
}

/** Where the image came from. */
export interface ImageSource {
  /** The OCI reference name (org.opencontainers.image.ref.name or a docker save RepoTag), if any. */
  reference?: string;
  /** sha256:... of the image manifest, if the source had one (plain layer tars have none). */
  manifestDigest?: string;
  /** sha256:... of the image config blob, if any. */
  configDigest?: string;
  /** The uncompressed layer digests (diff_ids), bottom first. */
  diffIds: string[];
}

/** /.mkimage/config.json */
export interface GuestConfigFile {
  schemaVersion: 1;
  source: ImageSource;
  config: ImageConfig;
}
