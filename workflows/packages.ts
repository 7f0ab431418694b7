// The lab's packages layers (image.packages): for each image, after it is attached and the lab's
// network is up, the layer installed (once, cached) and mounted for container.overlay to stack.
// Composed into up and spawn; stop detaches the layers with the images, down --purge deletes them.
import { containerSpecs } from "../config/containers.js";
import { imageStepId, type LabImage, labImages } from "../config/images.js";
import { intToIp, ipToInt, parseCidr } from "../config/ip.js";
import { imageStore, packagesLayerDir } from "../config/paths.js";
import type { Config } from "../config/schema.js";
import { stampPath } from "../src/image/stamp.js";
import { group, type Step, task } from "../src/runner/task.js";
import { imagePackages } from "../tasks/image/packages-layer.js";
import { imageLayerMount } from "../tasks/image/packages-mount.js";
import { imagePackagesPurge } from "../tasks/image/packages-purge.js";

/**
 * The address the install container uses on the lab's bridge: the subnet's highest host address
 * that is neither the bridge's nor any container's.
 */
export function builderAddress(c: Config): string {
  const net = parseCidr(c.network.address);
  const taken = new Set([ipToInt(net.address), ...containerSpecs(c).map((s) => ipToInt(s.ip))]);
  for (let n = net.broadcast - 1; n > net.network; n--)
    if (!taken.has(n)) return `${intToIp(n)}/${net.prefix}`;
  throw new Error(`image.packages: no free address in ${c.network.address} for the install container`);
}

/** One image's packages layer: installed, then mounted. */
export function packagesSteps(c: Config, img: LabImage): Step[] {
  const common = {
    image: img.path,
    imageStamp: stampPath(imageStore(c), img.path),
    lower: img.lower,
    store: imageStore(c),
    ...(img.section.packages ? { packages: img.section.packages } : {}),
  };
  return [
    task(imagePackages, imageStepId("image.packages", img), {
      ...common,
      bridge: c.network.bridge,
      address: builderAddress(c),
      gateway: parseCidr(c.network.address).address,
    }),
    task(imageLayerMount, imageStepId("image.layer", img), {
      ...common,
      target: packagesLayerDir(c, img.id),
      privateUsers: c.containers.privateUsers,
    }),
  ];
}

/**
 * Every image's packages layer, as one group: a line of its own while it works (an install takes
 * minutes), one line once done (most images need no layer: two steps saying so are not news).
 */
export const allPackagesSteps = (c: Config): Step[] => [
  group(
    "lab.packages",
    "Installing what the images lack (image.packages)",
    labImages(c).flatMap((img) => packagesSteps(c, img)),
    1,
    { collapse: true },
  ),
];

/** `run down --purge`: delete the packages layers made for the lab's images. */
export const purgePackagesSteps = (c: Config): Step[] =>
  labImages(c).map((img) =>
    task(imagePackagesPurge, imageStepId("image.packages-purge", img), {
      store: imageStore(c),
      image: img.path,
    }),
  );
