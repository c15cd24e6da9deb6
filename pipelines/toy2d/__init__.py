"""The 2-D playground: diffusion, DD-GAN and a GAN on point clouds, small enough to train live on a CPU.

data.py      the datasets (8 Gaussians, two moons, Swiss roll, circles, checkerboard, drawn strokes), seeded splits
score.py     the true score ∇ log q_t(x) of the noised data, and the true reverse posterior q(x_s | x_t)
models.py    the tiny networks: an ε/v MLP, DD-GAN's generator and discriminator, a plain GAN
train.py     seeded trainers that yield progress (for live streaming), and the CLI that writes the checkpoints
sample.py    DDPM / DDIM sampling through diffusers' schedulers, DD-GAN's 2-4 steps, the GAN's one
metrics.py   MMD to held-out data against the real-vs-real floor, mode coverage, speed
"""
