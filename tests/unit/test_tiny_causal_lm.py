"""The embedded causal LM: loads like a Hub chat model, tokenizes digits one by one,
decodes back exactly, and generates."""


def test_text_round_trips_and_numbers_split_into_digits(tiny_policy):
    _, tokenizer = tiny_policy
    text = "Ana has 12 apples and gets 7 more.\n12 + 7 = 19\n#### 19"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert [tokenizer.decode([i]) for i in tokenizer("1905", add_special_tokens=False)["input_ids"]] == list("1905")


def test_the_chat_template_ends_prompts_with_the_assistant_header(tiny_policy):
    _, tokenizer = tiny_policy
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "2 + 3?"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == "<|im_start|>user\n2 + 3?<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|pad|>"


def test_it_generates(tiny_policy):
    import torch

    model, tokenizer = tiny_policy
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Ben has 3 pens."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    torch.manual_seed(0)
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 5 or tokenizer.eos_token_id in out[0].tolist()
