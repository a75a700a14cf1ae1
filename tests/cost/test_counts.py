"""Parameter, MAC and weight-file counts of a tiny hand-built network against a hand count."""

import io

import pytest
import torch
from torch import nn

from retrieval.cost import COST_COLUMNS, count_macs, count_parameters, weights_file_bytes
from retrieval.models import create_model

# conv 3->4, 3x3, padding 1 on 8x8 (output 4x8x8), flatten (256), linear 256->10
CONV_PARAMS = 4 * 3 * 3 * 3 + 4               # weights + biases = 112
LINEAR_PARAMS = 256 * 10 + 10                  # 2570
CONV_MACS = (4 * 8 * 8) * (3 * 3 * 3)          # each of 256 outputs sums 27 products = 6912
LINEAR_MACS = 256 * 10                         # 2560 (biases are additions, not counted)


def tiny_net(batch_norm: bool = False) -> nn.Module:
    layers = [nn.Conv2d(3, 4, 3, padding=1)]
    if batch_norm:
        layers += [nn.BatchNorm2d(4)]
    return nn.Sequential(*layers, nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))


def test_parameters_match_the_hand_count():
    assert count_parameters(tiny_net()) == CONV_PARAMS + LINEAR_PARAMS == 2682
    # BatchNorm adds its 4 scales and 4 shifts; its running statistics are buffers, not parameters
    assert count_parameters(tiny_net(batch_norm=True)) == 2682 + 8


def test_trainable_only_leaves_frozen_parameters_out():
    net = tiny_net()
    net[0].requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == LINEAR_PARAMS
    assert count_parameters(net) == CONV_PARAMS + LINEAR_PARAMS


def test_macs_match_the_hand_count_per_image():
    assert count_macs(tiny_net(), (3, 8, 8)) == CONV_MACS + LINEAR_MACS == 9472
    # convolution MACs scale with the output area; BatchNorm and ReLU are not counted
    assert count_macs(nn.Conv2d(3, 4, 3, padding=1), (3, 16, 16)) == 4 * CONV_MACS
    assert count_macs(tiny_net(batch_norm=True), (3, 8, 8)) == 9472


def test_counting_keeps_the_training_mode_and_the_weights():
    net = tiny_net(batch_norm=True).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    count_macs(net, (3, 8, 8))
    assert net.training
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics untouched


def test_weights_file_bytes_is_the_size_of_the_saved_state_dict(tmp_path):
    net = tiny_net()
    path = tmp_path / "archive.pt"  # torch names the zip root after the file stem; "archive" in memory
    torch.save(net.state_dict(), path)
    assert weights_file_bytes(net) == path.stat().st_size
    assert weights_file_bytes(net) > 4 * (CONV_PARAMS + LINEAR_PARAMS)  # float32 values plus the container
    loaded = tiny_net()
    loaded.load_state_dict(torch.load(io.BytesIO(path.read_bytes()), weights_only=True))


def test_student_is_cheaper_than_teacher_on_the_default_pair():
    teacher = create_model("small_cnn_s", embedding_dim=128, normalize=True)
    student = create_model("small_cnn_xs", embedding_dim=64, normalize=True)
    assert count_parameters(student) < count_parameters(teacher)
    assert count_macs(student, (3, 32, 32)) < count_macs(teacher, (3, 32, 32))
    assert weights_file_bytes(student) < weights_file_bytes(teacher)


def test_aggregate_knows_the_same_cost_columns():
    from benchmarks.report.aggregate import COST

    assert tuple(COST) == COST_COLUMNS


def test_bad_input_shape_is_an_error():
    with pytest.raises(RuntimeError):
        count_macs(tiny_net(), (1, 8, 8))  # the conv expects 3 channels
