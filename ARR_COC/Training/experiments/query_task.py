"""Experiments behind docs/training.md's "query-dependent task" figures: can a tiny
Qwen3-VL learn one-hop query-dependent questions, and at what CPU cost?

Research code, not the product: the recipe it found is what pretrain_tiny now
does. Kept so that the tables in docs/training.md can be rerun:

    tools/bazel run //ARR_COC/Training/experiments:query_task -- --vision-pretrain-steps 150 --aux \
        --temporal 1 --steps 3600 --lr 5e-3 --objects 1,2,4,8,12,12,12,12,12,12,12,12
"""
import argparse, json, sys, time
import numpy as np
import torch
from PIL import Image, ImageDraw

torch.set_num_threads(1)
from ARR_COC import sequences
from ARR_COC.backbone import tiny_pixel_values, SPECIAL_TOKENS, UNKNOWN_TOKEN, TINY_WORDS

SHAPES = ("square", "circle", "triangle", "cross")
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230),
           "yellow": (230, 220, 50), "purple": (160, 60, 200), "orange": (240, 140, 30)}
CORNER_WORDS = ("topleft", "topright", "bottomleft", "bottomright")
WORDS = TINY_WORDS + tuple(w for w in CORNER_WORDS if w not in TINY_WORDS)
VOCAB = {t: i for i, t in enumerate(SPECIAL_TOKENS + (UNKNOWN_TOKEN,) + WORDS)}
BG = (20, 20, 24)
IMG, CELL, GRID = 256, 32, 8
KINDS = ("shape", "colour", "position")
# Switches set from the flags in main().
ORACLE = AUX = STATS = FREEZE_VISION = False
VLR, QK, VPRE, VPRE_LR = 1.0, 0.0, 0, 3e-3


def draw_shape(draw, shape, box, fill):
    l, t, r, b = box
    if shape == "square": draw.rectangle(box, fill=fill)
    elif shape == "circle": draw.ellipse(box, fill=fill)
    elif shape == "triangle": draw.polygon([((l + r) / 2, t), (r, b), (l, b)], fill=fill)
    else:
        tw, th = (r - l) / 3, (b - t) / 3
        draw.rectangle((l + tw, t, r - tw, b), fill=fill); draw.rectangle((l, t + th, r, b - th), fill=fill)


def corners():
    return (0, GRID - 1, GRID * (GRID - 1), GRID * GRID - 1)


def sample(seed, index, n, kind=None, kinds=KINDS):
    rng = np.random.default_rng([seed, index])
    corner_i = int(rng.integers(4))
    corner = corners()[corner_i]
    others = [c for c in rng.permutation(GRID * GRID).tolist() if c not in corners()][: n - 1]
    # objects: target set: 0 shape-kind target, 1 colour-kind target, 2 position target (corner)
    cells = [corner] + others  # object 0 is in a corner
    ushape = SHAPES[int(rng.integers(4))]; ucol = list(COLOURS)[int(rng.integers(6))]
    oshapes = [s for s in SHAPES if s != ushape]; ocols = [c for c in COLOURS if c != ucol]
    shapes = [oshapes[int(i)] for i in rng.integers(3, size=n)]
    cols = [ocols[int(i)] for i in rng.integers(5, size=n)]
    ts, tc, tp = (1 % n), (2 % n), 0
    shapes[ts] = ushape; cols[tc] = ucol
    image = Image.new("RGB", (IMG, IMG), BG); d = ImageDraw.Draw(image)
    for cell, s, c in zip(cells, shapes, cols):
        row, col = divmod(cell, GRID)
        side = int(rng.integers(CELL * 5 // 8, CELL - 3))
        dx, dy = (int(v) for v in rng.integers(1, CELL - side, size=2))
        L, T = col * CELL + dx, row * CELL + dy
        draw_shape(d, s, (L, T, L + side - 1, T + side - 1), COLOURS[c])
    kind = kind or kinds[int(np.random.default_rng([seed, index, 2]).integers(len(kinds)))]
    if kind == "shape": q, a, t = f"what colour is the {shapes[ts]}", cols[ts], ts
    elif kind == "colour": q, a, t = f"what shape is the {cols[tc]}", shapes[tc], tc
    else: q, a, t = f"what colour is the {CORNER_WORDS[corner_i]}", cols[tp], tp
    lab_s = np.zeros(GRID * GRID, dtype=np.int64); lab_c = np.zeros(GRID * GRID, dtype=np.int64)
    for cell, s_, c_ in zip(cells, shapes, cols):
        lab_s[cell] = 1 + SHAPES.index(s_); lab_c[cell] = 1 + list(COLOURS).index(c_)
    return np.asarray(image), [VOCAB[w] for w in q.split()], VOCAB[a], kind, cells[t], VOCAB[cols[t]], lab_s, lab_c


def config(args):
    from transformers import Qwen3VLConfig
    ids = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    hd = args.head_dim
    sec = [hd // 4, hd // 8, hd // 8]
    text = dict(vocab_size=512, hidden_size=args.hidden, intermediate_size=2 * args.hidden,
                num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv,
                head_dim=hd, max_position_embeddings=1024,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": sec,
                                 "mrope_interleaved": True}, tie_word_embeddings=False)
    vision = dict(depth=args.vdepth, hidden_size=64, intermediate_size=128, num_heads=4, patch_size=16,
                  spatial_merge_size=2, temporal_patch_size=args.temporal, out_hidden_size=args.hidden,
                  num_position_embeddings=256, deepstack_visual_indexes=[])
    return Qwen3VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                         video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                         vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False)


BEFORE = [VOCAB["<|im_start|>"], VOCAB["user"], VOCAB["<|vision_start|>"]]
AFTER = [VOCAB["<|vision_end|>"]]
BEFORE_ANSWER = [VOCAB["<|im_end|>"], VOCAB["<|im_start|>"], VOCAB["assistant"]]


def forward(model, items, fast=True):
    images = torch.from_numpy(np.stack([it[0] for it in items])).permute(0, 3, 1, 2).float() / 255.0
    B = len(items)
    pv = tiny_pixel_values(images, model.config.vision_config)
    thw = torch.tensor([[1, 16, 16]] * B)
    ids = torch.tensor([BEFORE + [VOCAB["<|image_pad|>"]] * 64 + AFTER + it[1] + BEFORE_ANSWER for it in items])
    L = ids.shape[1]
    cells = sequences.cells_of(torch.arange(64), GRID)
    pos = sequences.sample_positions(len(BEFORE), cells, (GRID, GRID), L)
    pos = pos[:, None].expand(3, B, L)
    if fast:
        vis = model.model.visual(pv, grid_thw=thw).pooler_output  # [B*64, D]
        emb = model.model.language_model.embed_tokens(ids)
        if ORACLE:
            tgt = torch.tensor([it[4] for it in items]); oc = torch.tensor([it[5] for it in items])
            fake = model.model.language_model.embed_tokens(torch.full((B, 64), VOCAB["object"]))
            fake[torch.arange(B), tgt] = model.model.language_model.embed_tokens(oc)
            vis = fake.reshape(B * 64, -1)
        if STATS: print("vis norm", vis.norm(dim=-1).mean().item(), "txt norm", emb.norm(dim=-1).mean().item())
        mask = ids == VOCAB["<|image_pad|>"]
        emb = emb.masked_scatter(mask[..., None], vis.to(emb.dtype))
        h = model.model.language_model(inputs_embeds=emb, position_ids=pos, use_cache=False).last_hidden_state
        if AUX and model.training: return model.lm_head(h[:, -1]), model.lm_head(h[:, -4])
        return model.lm_head(h[:, -1])
    out = model(input_ids=ids, pixel_values=pv, image_grid_thw=thw, position_ids=pos,
                mm_token_type_ids=(ids == VOCAB["<|image_pad|>"]).int(), use_cache=False)
    return out.logits[:, -1]


@torch.no_grad()
def evaluate(model, args, n=96):
    model.eval(); res = {}
    for kind in args.kinds:
        items = [sample(98, i, args.eval_objects, kind) for i in range(n)]
        correct = 0
        for s in range(0, n, 32):
            lg = forward(model, items[s:s + 32])
            correct += int((lg.argmax(-1) == torch.tensor([it[2] for it in items[s:s + 32]])).sum())
        res[kind] = round(correct / n, 3)
    model.train(); return res


def objects_at(step, args):
    sched = [int(x) for x in args.objects.split(",")]
    return sched[min(len(sched) - 1, step * len(sched) // args.steps)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, default=64); p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv", type=int, default=2); p.add_argument("--head-dim", type=int, default=16)
    p.add_argument("--layers", type=int, default=2); p.add_argument("--vdepth", type=int, default=0)
    p.add_argument("--lr", type=float, default=3e-3); p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=16); p.add_argument("--objects", default="12")
    p.add_argument("--eval-objects", type=int, default=12)
    p.add_argument("--kinds", default="shape,colour,position"); p.add_argument("--slow", action="store_true")
    p.add_argument("--eval-every", type=int, default=100); p.add_argument("--warmup", type=float, default=0.1)
    p.add_argument("--profile", action="store_true"); p.add_argument("--temporal", type=int, default=2); p.add_argument("--freeze-patch", action="store_true"); p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--oracle", action="store_true", help="give the LM a perfect stand-in for the object's token")
    p.add_argument("--aux", action="store_true", help="also score the answer predicted at the naming word")
    p.add_argument("--stats", action="store_true", help="print visual and text embedding norms")
    p.add_argument("--freeze-vision", action="store_true", help="keep the vision tower at its random init")
    p.add_argument("--vision-lr-scale", type=float, default=1.0)
    p.add_argument("--qk", type=float, default=0.0, help="initial q/k norm gain (0: unchanged)")
    p.add_argument("--vision-pretrain-steps", type=int, default=0, help="stage 1: the tower alone on cell labels")
    p.add_argument("--vision-pretrain-lr", type=float, default=3e-3)
    args = p.parse_args(); args.kinds = tuple(args.kinds.split(","))
    global ORACLE, AUX, STATS, FREEZE_VISION, VLR, QK, VPRE, VPRE_LR
    ORACLE, AUX, STATS, FREEZE_VISION = args.oracle, args.aux, args.stats, args.freeze_vision
    VLR, QK, VPRE, VPRE_LR = args.vision_lr_scale, args.qk, args.vision_pretrain_steps, args.vision_pretrain_lr
    from transformers import Qwen3VLForConditionalGeneration
    torch.manual_seed(args.seed)
    model = Qwen3VLForConditionalGeneration(config(args)).train()
    if QK:
        for layer in model.model.language_model.layers:
            layer.self_attn.q_norm.weight.data.fill_(QK); layer.self_attn.k_norm.weight.data.fill_(QK)
    if args.freeze_patch: model.model.visual.patch_embed.requires_grad_(False)
    if FREEZE_VISION: model.model.visual.requires_grad_(False)
    if VPRE:
        heads = torch.nn.Linear(args.hidden, 5 + 7)
        vopt = torch.optim.AdamW(list(model.model.visual.parameters()) + list(heads.parameters()), lr=VPRE_LR)
        for step in range(VPRE):
            items = [sample(97, step * args.batch + i, 12) for i in range(args.batch)]
            images = torch.from_numpy(np.stack([it[0] for it in items])).permute(0, 3, 1, 2).float() / 255.0
            v = model.model.visual(tiny_pixel_values(images, model.config.vision_config),
                                   grid_thw=torch.tensor([[1, 16, 16]] * len(items))).pooler_output
            # merged tokens come in raster order of the 8x8 grid
            out = heads(v)
            ls = torch.nn.functional.cross_entropy(out[:, :5], torch.from_numpy(np.concatenate([it[6] for it in items])))
            lc = torch.nn.functional.cross_entropy(out[:, 5:], torch.from_numpy(np.concatenate([it[7] for it in items])))
            (ls + lc).backward(); vopt.step(); vopt.zero_grad()
            if step % 25 == 0: print(json.dumps({"vpre": step, "shape": round(ls.item(), 3), "colour": round(lc.item(), 3), "cpu": round(time.process_time(), 1)}), flush=True)
        model.model.visual.requires_grad_(False)
    vis = [q for q in model.model.visual.parameters() if q.requires_grad]; vid = {id(q) for q in vis}
    rest = [q for q in model.parameters() if q.requires_grad and id(q) not in vid]
    groups = [{"params": rest, "lr": args.lr}] + ([{"params": vis, "lr": args.lr * VLR}] if vis else [])
    opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=0.01)
    sch = torch.optim.lr_scheduler.OneCycleLR(opt, [g["lr"] for g in groups], total_steps=args.steps, pct_start=args.warmup)
    t0 = time.process_time(); tdata = 0.0
    for step in range(args.steps):
        a = time.process_time()
        items = [sample(99, step * args.batch + i, objects_at(step, args), kinds=args.kinds) for i in range(args.batch)]
        tdata += time.process_time() - a
        lg = forward(model, items, fast=not args.slow)
        y = torch.tensor([it[2] for it in items])
        if AUX: loss = torch.nn.functional.cross_entropy(lg[0], y) + torch.nn.functional.cross_entropy(lg[1], y)
        else: loss = torch.nn.functional.cross_entropy(lg, y)
        loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sch.step(); opt.zero_grad(set_to_none=True)
        if step % 25 == 0:
            print(json.dumps({"step": step, "loss": round(loss.item(), 3), "obj": objects_at(step, args),
                              "cpu": round(time.process_time() - t0, 1), "data": round(tdata, 1)}), flush=True)
        if args.eval_every and step and step % args.eval_every == 0:
            print(json.dumps({"step": step, "eval": evaluate(model, args)}), flush=True)
        if args.profile and step == 10:
            print("per step", (time.process_time() - t0) / 11, "data", tdata / 11); return
    cpu = time.process_time() - t0
    print(json.dumps({"final": evaluate(model, args), "cpu": round(cpu, 1), "args": vars(args)}), flush=True)


if __name__ == "__main__":
    main()
