"""The KD loss functions, usable on their own with (student feature, teacher feature) tensors."""

from retrieval.methods.losses.activation_attention import activation_attention, activation_attention_loss
from retrieval.methods.losses.cc import cc_loss
from retrieval.methods.losses.channel_attention import ChannelConnector, channel_affinity, channel_attention_loss
from retrieval.methods.losses.crd import CRDLoss, nce_loss
from retrieval.methods.losses.darkrank import darkrank_loss, darkrank_scores
from retrieval.methods.losses.dist import dist_loss, dist_terms
from retrieval.methods.losses.dkd import dkd_loss, dkd_terms
from retrieval.methods.losses.kd import kd_loss
from retrieval.methods.losses.nst import nst_loss, poly_kernel
from retrieval.methods.losses.ofd import ofd_loss, ofd_margin
from retrieval.methods.losses.pkt import cosine_probabilities, pkt_loss
from retrieval.methods.losses.position_attention import (position_affinity, position_attention_loss,
                                                         position_attention_loss_plain)
from retrieval.methods.losses.reviewkd import ABF, hcl_loss
from retrieval.methods.losses.rkd import pairwise_distances, rkd_angle_loss, rkd_distance_loss
from retrieval.methods.losses.sp import similarity_matrix, sp_loss
from retrieval.methods.losses.vid import VIDRegressor, vid_loss

__all__ = ["activation_attention", "activation_attention_loss", "ChannelConnector", "channel_affinity",
           "channel_attention_loss", "CRDLoss", "nce_loss", "kd_loss", "position_affinity",
           "position_attention_loss", "position_attention_loss_plain", "pairwise_distances", "rkd_angle_loss",
           "rkd_distance_loss", "cosine_probabilities", "pkt_loss", "similarity_matrix", "sp_loss", "nst_loss",
           "poly_kernel", "dkd_loss", "dkd_terms", "dist_loss",
           "dist_terms", "cc_loss", "darkrank_loss", "darkrank_scores", "VIDRegressor", "vid_loss", "ABF", "hcl_loss",
           "ofd_loss", "ofd_margin"]
