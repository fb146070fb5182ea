"""Which of Label Studio's export formats a Target may write, checked against the labeling config
with Label Studio's own converter; and the stand-in image that gives the converter the labels' size."""

import io

import pytest
from PIL import Image

from pachstudio.labelstudio.storage.target_exports import _stand_in_image, check_formats, offered

pytestmark = pytest.mark.fast

BOXES = (
    '<View><Image name="image" value="$image"/><RectangleLabels name="box" toName="image">'
    '<Label value="cat"/></RectangleLabels></View>'
)
TEXT = (
    '<View><Text name="text" value="$text"/><Choices name="choice" toName="text"><Choice value="cat"/></Choices></View>'
)
TWO_FIELDS = (
    '<View><Image name="image" value="$image"/><Text name="text" value="$caption"/>'
    '<RectangleLabels name="box" toName="image"><Label value="cat"/></RectangleLabels>'
    '<Choices name="topic" toName="text"><Choice value="pets"/></Choices></View>'
)


def refusal(value, config) -> str:
    with pytest.raises(ValueError) as caught:
        check_formats(value, config)
    return str(caught.value)


def test_an_image_box_config_offers_coco_yolo_and_voc_but_nothing_that_downloads_images():
    formats = offered(BOXES)
    assert {"COCO", "YOLO", "VOC", "JSON", "JSON_MIN", "CSV"} <= set(formats)
    assert not [f for f in formats if f.endswith("WITH_IMAGES")]


def test_chosen_formats_are_normalised_from_a_list_or_the_forms_text():
    assert check_formats("coco, yolo,COCO", BOXES) == ["COCO", "YOLO"]
    assert check_formats(["json-min", "voc"], BOXES) == ["JSON_MIN", "VOC"]
    assert check_formats("", BOXES) == [] and check_formats(None, BOXES) == []


def test_a_format_that_does_not_fit_says_why_and_what_fits():
    text = refusal(["YOLO"], TEXT)
    assert "YOLO does not fit" in text and "RectangleLabels" in text and "JSON_MIN" in text and "COCO" not in text
    assert "several data fields (caption, image)" in refusal(["COCO"], TWO_FIELDS)
    assert "copies the images" in refusal(["YOLO_WITH_IMAGES"], BOXES)
    assert '"TIFF" is not one of' in refusal("tiff", BOXES)
    assert "give a list" in refusal({"COCO": True}, BOXES)


def test_the_stand_in_image_has_the_size_the_labels_were_drawn_on():
    task = {"annotations": [{"result": [{"value": {}}, {"original_width": 640, "original_height": 480}]}]}
    with Image.open(io.BytesIO(_stand_in_image(task))) as image:
        assert image.size == (640, 480)
    assert _stand_in_image({"annotations": [{"result": []}]}) == b""
