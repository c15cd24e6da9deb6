"""An unconditional DDPM on MNIST: diffusers' UNet2DModel + DDPM/DDIM schedulers."""
