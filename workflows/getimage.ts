// The getimage workflow: make the lab's images (config/images.ts) available and verified. An
// http(s) URL is downloaded into the image store; a file:// URL is used where it is, built first
// from its build recipe when it does not exist yet; an OCI image (image.oci) is pulled and flattened
// into the store, and so is an image server's (image.server).
import { imageStepId, isFileImage, isPulled, type LabImage, labImages } from "../config/images.js";
import { imageStore } from "../config/paths.js";
import type { Config } from "../config/schema.js";
import type { Recipe } from "../src/image/build-plan.js";
import { imageName } from "../src/image/image-host.js";
import { simplestreamsArch } from "../src/image/simplestreams.js";
import { stampPath } from "../src/image/stamp.js";
import { type Step, task } from "../src/runner/task.js";
import { type BuildParams, imageBuild } from "../tasks/image/build.js";
import { imageDirs } from "../tasks/image/dirs.js";
import { imageDownload } from "../tasks/image/download.js";
import { imageOci } from "../tasks/image/oci.js";
import { type DownloadParams, imagePrecheck } from "../tasks/image/precheck.js";
import { imagePurge } from "../tasks/image/purge.js";
import { imageServer } from "../tasks/image/simplestreams.js";
import { imageVerify } from "../tasks/image/verify.js";
import type { WorkflowBuilder } from "./types.js";

type BuildSection = NonNullable<Config["image"]["build"]>;

/** A build recipe for this host's architecture. */
function imageRecipe(b: BuildSection): Recipe {
  return { suite: b.suite, mirror: b.mirror, packages: b.packages, arch: process.arch, keyring: b.keyring };
}

/** The config's own image: the lab's first in a lab without sets. */
const mainImage = (c: Config): LabImage =>
  labImages({ ...c, containers: { ...c.containers, sets: undefined } })[0]!;

/**
 * An image's image.build step (also run by `aplspawn image build`, which passes the default recipe
 * when the config's image has none). The config's own image unless `image` says which.
 */
export function imageBuildStep(
  c: Config,
  o: { image?: LabImage; build?: BuildSection; target?: string; rootfs?: string; force?: boolean } = {},
): Step {
  const img = o.image ?? mainImage(c);
  const build = o.build ?? img.section.build;
  if (!build) throw new Error("imageBuildStep: no build recipe");
  const target = o.target ?? img.path;
  const params: BuildParams = {
    target,
    recipe: imageRecipe(build),
    stamp: stampPath(imageStore(c), target),
    ...(o.rootfs ? { rootfs: o.rootfs } : {}),
    ...(o.force ? { force: true } : {}),
  };
  return task(imageBuild, imageStepId("image.build", img), params);
}

/**
 * An OCI image's or an image server's steps: the image store, then the pull or download (`force`:
 * even when it is cached).
 */
export function imagePullStep(c: Config, img: LabImage, force = false): Step[] {
  const store = imageStore(c);
  const { oci, server, alias, insecure, maxSize } = img.section;
  const stamp = stampPath(store, img.path);
  const dirs = task(imageDirs, imageStepId("image.dirs", img), { dirs: [store] });
  const forced = force ? { force } : {};
  if (oci)
    return [
      dirs,
      task(imageOci, imageStepId("image.oci", img), { ref: oci, path: img.path, stamp, insecure, ...forced }),
    ];
  if (!server || !alias) throw new Error("imagePullStep: neither an OCI image nor an image server's");
  const arch = simplestreamsArch();
  return [
    dirs,
    task(imageServer, imageStepId("image.server", img), {
      server,
      alias,
      arch,
      path: img.path,
      stamp,
      store,
      insecure,
      maxSize,
      ...forced,
    }),
  ];
}

/** The steps that make one image available and verified (download or build; also composed into `up`). */
export function imageGetSteps(c: Config, img: LabImage): Step[] {
  const { section, path } = img;
  const store = imageStore(c);
  const id = (kind: string) => imageStepId(kind, img);
  const digest = {
    ...(section.sha256 ? { sha256: section.sha256 } : {}),
    ...(section.checksums ? { checksums: section.checksums } : {}),
    ...(section.checksumsKeyring ? { checksumsKeyring: section.checksumsKeyring } : {}),
  };
  const stamp = stampPath(store, path);
  if (isPulled(section)) return imagePullStep(c, img);
  const name = imageName(section.url);
  if (isFileImage(section))
    return [
      ...(section.build ? [imageBuildStep(c, { image: img })] : []),
      task(imageVerify, id("image.verify"), { path, stamp, name, buildable: !!section.build, ...digest }),
    ];
  const p: DownloadParams = {
    url: section.url,
    path,
    store,
    stamp,
    name,
    maxSize: section.maxSize,
    ...digest,
  };
  return [
    task(imageDirs, id("image.dirs"), { dirs: [store] }),
    task(imagePrecheck, id("image.precheck"), p),
    task(imageDownload, id("image.download"), p),
  ];
}

/** Every image of the lab, one after the other (the getimage workflow). */
export const getimageSteps = (c: Config): Step[] => labImages(c).flatMap((img) => imageGetSteps(c, img));

/** `run down --purge`: delete the downloaded and pulled images (image.oci, image.server) (a file:// image is the user's and stays). */
export const purgeImageSteps = (c: Config): Step[] =>
  labImages(c)
    .filter((img) => !isFileImage(img.section))
    .map((img) =>
      task(imagePurge, imageStepId("image.purge", img), {
        path: img.path,
        stamp: stampPath(imageStore(c), img.path),
      }),
    );

/** The getimage workflow. */
export const getimage: WorkflowBuilder = (c) => ({ name: "getimage", steps: getimageSteps(c) });
