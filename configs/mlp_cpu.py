# The MLP sized for a CPU: 45 seconds of training on 2 cores, whatever the CPU; with AMX (bfloat16) that
# is about 5,100 steps and val_loss_full about 1.61 (README, Results); in float32, about 2,000 steps and 1.67.
# python mlp.py configs/mlp_cpu.py
out_dir = 'out/mlp_cpu'
device = 'cpu'
batch_size = 64
block_size = 16
n_embd = 32
n_hidden = 512
n_layer = 2
dropout = 0.0              # too few steps to overfit
time_budget = 45.0         # seconds of training: the run settles its step count to fit and prints it
learning_rate = 3e-3
min_lr = 3e-4
warmup_iters = 100
eval_interval = 1000
eval_iters = 20
