// The image task kinds, for the registry in tasks/index.ts.
import type { AnyTaskDef } from "../../src/runner/task.js";
import { imageBuild } from "./build.js";
import { imageDirs } from "./dirs.js";
import { imageDownload } from "./download.js";
import { imageLoop } from "./loop.js";
import { imageLower } from "./lower.js";
import { imageOci } from "./oci.js";
import { imagePackages } from "./packages-layer.js";
import { imageLayerMount } from "./packages-mount.js";
import { imagePackagesPurge } from "./packages-purge.js";
import { imagePrecheck } from "./precheck.js";
import { imagePurge } from "./purge.js";
import { imageServer } from "./simplestreams.js";
import { imageVerify } from "./verify.js";

/** Every image task kind. */
export const imageTasks: AnyTaskDef[] = [
  imageDirs,
  imagePrecheck,
  imageDownload,
  imageVerify,
  imageBuild,
  imageOci,
  imageServer,
  imageLoop,
  imageLower,
  imagePurge,
  imagePackages,
  imageLayerMount,
  imagePackagesPurge,
];
