// The getimage workflow: make the image available and verified. An http(s) URL is downloaded into
// the image store; a file:// URL is used where it is, built first from image.build when it does not
// exist yet.
import { imagePath, imageStore } from "../config/paths.js";
import type { Config } from "../config/schema.js";
import type { Recipe } from "../src/image/build-plan.js";
import { imageName } from "../src/image/image-host.js";
import { stampPath } from "../src/image/stamp.js";
import { type Step, task } from "../src/runner/task.js";
import { type BuildParams, imageBuild } from "../tasks/image/build.js";
import { imageDirs } from "../tasks/image/dirs.js";
import { imageDownload } from "../tasks/image/download.js";
import { type DownloadParams, imagePrecheck } from "../tasks/image/precheck.js";
import { imagePurge } from "../tasks/image/purge.js";
import { imageVerify } from "../tasks/image/verify.js";
import type { WorkflowBuilder } from "./types.js";

type BuildSection = NonNullable<Config["image"]["build"]>;

/** A build recipe for this host's architecture. */
function imageRecipe(b: BuildSection): Recipe {
  return { suite: b.suite, mirror: b.mirror, packages: b.packages, arch: process.arch, keyring: b.keyring };
}

/** The image.build step (also run by `aplspawn image build`, which passes the default recipe when the config has none). */
export function imageBuildStep(
  c: Config,
  o: { build?: BuildSection; target?: string; rootfs?: string; force?: boolean } = {},
): Step {
  const build = o.build ?? c.image.build;
  if (!build) throw new Error("imageBuildStep: no build recipe");
  const target = o.target ?? imagePath(c);
  const params: BuildParams = {
    target,
    recipe: imageRecipe(build),
    stamp: stampPath(imageStore(c), target),
    ...(o.rootfs ? { rootfs: o.rootfs } : {}),
    ...(o.force ? { force: true } : {}),
  };
  return task(imageBuild, "image.build", params);
}

/** The steps that make the image available and verified (download or build; also composed into `up`). */
export const getimageSteps = (c: Config): Step[] => {
  const path = imagePath(c);
  const store = imageStore(c);
  const digest = {
    ...(c.image.sha256 ? { sha256: c.image.sha256 } : {}),
    ...(c.image.checksums ? { checksums: c.image.checksums } : {}),
    ...(c.image.checksumsKeyring ? { checksumsKeyring: c.image.checksumsKeyring } : {}),
  };
  const name = imageName(c.image.url);
  const stamp = stampPath(store, path);
  if (new URL(c.image.url).protocol === "file:")
    return [
      ...(c.image.build ? [imageBuildStep(c)] : []),
      task(imageVerify, "image.verify", { path, stamp, name, buildable: !!c.image.build, ...digest }),
    ];
  const p: DownloadParams = {
    url: c.image.url,
    path,
    store,
    stamp,
    name,
    maxSize: c.image.maxSize,
    ...digest,
  };
  return [
    task(imageDirs, "image.dirs", { dirs: [store] }),
    task(imagePrecheck, "image.precheck", p),
    task(imageDownload, "image.download", p),
  ];
};

/** `run down --purge`: delete a downloaded image (a file:// image is the user's and stays). */
export const purgeImageSteps = (c: Config): Step[] =>
  new URL(c.image.url).protocol === "file:"
    ? []
    : [
        task(imagePurge, "image.purge", {
          path: imagePath(c),
          stamp: stampPath(imageStore(c), imagePath(c)),
        }),
      ];

/** The getimage workflow. */
export const getimage: WorkflowBuilder = (c) => ({ name: "getimage", steps: getimageSteps(c) });
