"""Object detection track: COCO-json data, Faster R-CNN + FPN detectors that expose their
backbone stages and FPN levels to the KD methods, and COCO AP from pycocotools."""

from retrieval.detection.coco_io import MalformedAnnotationError, load_coco, write_coco_json
from retrieval.detection.dataset import CocoDetectionDataset
from retrieval.detection.distiller import DetectionDistiller
from retrieval.detection.evaluate import coco_ap, evaluate_detector
from retrieval.detection.model import Detector, create_detector

__all__ = ["MalformedAnnotationError", "load_coco", "write_coco_json", "CocoDetectionDataset",
           "DetectionDistiller", "coco_ap", "evaluate_detector", "Detector", "create_detector"]
