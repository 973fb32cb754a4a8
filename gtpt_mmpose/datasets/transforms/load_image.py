"""Load an image as 3-channel uint8 BGR, or refuse it with one message that
names the problem."""
from typing import Optional

import cv2
import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmpose.datasets.transforms import LoadImage
from mmpose.registry import TRANSFORMS

from ..bad_samples import BadSampleError


class ImageNotFoundError(BadSampleError, FileNotFoundError):
    """An image file does not exist."""


class UnreadableImageError(BadSampleError, ValueError):
    """An image file is empty, truncated, corrupt or not an image."""


def to_bgr(img: np.ndarray, name: str = 'image array') -> np.ndarray:
    """Return ``img`` as an (H, W, 3) uint8 BGR array.

    Greyscale (H, W) or (H, W, 1) is replicated to three channels and 4-channel
    BGRA loses its alpha channel, as OpenCV does when it reads such files in
    colour.

    Args:
        img (np.ndarray): The image, (H, W), (H, W, 1), (H, W, 3) or (H, W, 4).
        name (str): What the image is, for the error messages (e.g. its path).

    Returns:
        np.ndarray: The (H, W, 3) uint8 BGR image (``img`` itself when it
        already is one).
    """
    if not isinstance(img, np.ndarray):
        raise TypeError(
            f'{name}: expected a numpy array (H, W, 3) BGR uint8, got '
            f'{type(img).__name__}')
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2]
                                  not in (1, 3, 4)) or 0 in img.shape[:2]:
        raise ValueError(
            f'{name} has shape {img.shape}; expected (H, W) or (H, W, 1) '
            'greyscale, '
            '(H, W, 3) BGR or (H, W, 4) BGRA with H, W > 0')
    if img.dtype != np.uint8:
        # Integers that are already 0..255 convert without loss. Floats do not:
        # a [0, 1] image and a [0, 255] one cannot be told apart, and the
        # model's normalisation expects 0..255.
        if not (np.issubdtype(img.dtype, np.integer) and img.min() >= 0
                and img.max() <= 255):
            raise ValueError(f'{name} has dtype {img.dtype} (values '
                             f'{img.min()}..{img.max()}); expected '
                             'uint8 in 0..255: convert it, e.g. (img * '
                             '255).round().astype(np.uint8) '
                             'for a float image in [0, 1]')
        img = img.astype(np.uint8)
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


@TRANSFORMS.register_module()
class LoadImageAsBGR(LoadImage):
    """``LoadImage`` that gives every image as (H, W, 3) uint8 BGR, or one
    clear error.

    Images come from ``results['img_path']`` (training, testing,
    ``inference_topdown`` with a path) or as arrays in ``results['img']``
    (``inference_topdown`` and ``MMPoseInferencer`` with an array). Greyscale
    and BGRA arrays are converted to BGR (files already are, by OpenCV's colour
    flag); arrays of any other shape, and arrays that are not uint8 and not
    integers in 0..255, are refused with ``ValueError`` naming the shape or
    dtype.

    Why it differs from MMPose's ``LoadImage`` (mmpose 1.3.2, mmcv 2.1.0),
    which re-raises every failure as "`<inner message>` occurs when loading
    `<path>`.Please check whether the file exists." chained to the original
    traceback:

    * an empty file gives ``cv2.error`` with OpenCV's assertion text
      (``!buf.empty()``), and a file that does not decode an ``AssertionError``
      ("failed to load image"): both tell the user to check that a file exists
      that does exist. Here: ``ValueError`` saying the file is empty or not a
      readable image;
    * a missing file gives ``FileNotFoundError`` with the path twice; here
      once, unchained;
    * arrays are passed on unchecked: a greyscale one ends in an ``IndexError``
      in the data preprocessor; a BGRA one, or a float one in [0, 1], runs
      without a word on wrong input.

    A missing file raises :class:`ImageNotFoundError`, an unreadable one
    :class:`UnreadableImageError`; both are ``BadSampleError``, which
    :class:`~gtpt_mmpose.datasets.SkipBadSamples` catches to replace the
    sample in training.

    Args:
        Same as :class:`mmpose.datasets.transforms.LoadImage`;
        ``ignore_empty=True`` still returns None for a missing, empty or
        unreadable file instead of raising.
    """

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']`` or check ``results['img']``.

        Args:
            results (dict): The result dict.

        Returns:
            dict: The result dict with ``img``, ``img_shape`` and
                ``ori_shape``.
        """
        if 'img' in results:
            results['img'] = to_bgr(results['img'])
            return super().transform(
                results)  # sets the shapes; to_float32 if asked

        filename = results['img_path']
        try:
            img = self.read(filename)
        except BadSampleError:
            if self.ignore_empty:
                return None
            raise
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def read(self, filename: str) -> np.ndarray:
        """Read and decode an image file.

        Args:
            filename (str): The file.

        Returns:
            np.ndarray: The (H, W, 3) uint8 BGR image.

        Raises:
            ImageNotFoundError: The file does not exist.
            UnreadableImageError: It is empty or does not decode.
        """
        try:
            if self.file_client_args is not None:
                img_bytes = fileio.FileClient.infer_client(
                    self.file_client_args, filename).get(filename)
            else:
                img_bytes = fileio.get(
                    filename, backend_args=self.backend_args)
        except FileNotFoundError:
            raise ImageNotFoundError(
                f'image file not found: {filename}') from None
        if len(img_bytes) == 0:
            raise UnreadableImageError(
                f'image file is empty (0 bytes): {filename}')
        try:
            img = mmcv.imfrombytes(
                img_bytes, flag=self.color_type, backend=self.imdecode_backend)
        # the decoders raise many types (cv2.error, PIL's, turbojpeg's)
        except Exception:
            img = None
        if img is None:  # OpenCV returns None for bytes it cannot decode
            raise UnreadableImageError(
                f'{filename} is not a readable image: {self.imdecode_backend} '
                f'could not decode its {len(img_bytes)} bytes (corrupt, '
                'truncated or not an image)')
        return to_bgr(img, name=filename)
