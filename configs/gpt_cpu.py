# A GPT sized for a CPU: about 2.5 minutes on 2 cores, val_loss_full about 1.67 (README, Results).
# python gpt.py configs/gpt_cpu.py
out_dir = 'out/gpt_cpu'
device = 'cpu'
batch_size = 32
block_size = 64
n_layer = 4
n_head = 4
n_embd = 128
dropout = 0.0              # too few steps to overfit: dropout would only slow learning
max_iters = 1500           # about 95 ms a step on 2 cores: stays inside 3 minutes
learning_rate = 4e-3       # a small model takes a large rate: 2e-3 gave 1.72, 4e-3 1.67 (learned positions)
min_lr = 4e-4
warmup_iters = 50
lr_decay_iters = 1500
eval_interval = 300
eval_iters = 20
