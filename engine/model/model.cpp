#include "engine/model/model.h"

#include <filesystem>
#include <functional>

#include "engine/core/error.h"
#include "engine/demo.h"
#include "engine/formats/gguf.h"
#include "engine/formats/safetensors.h"
#include "engine/model/catalog.h"
#include "engine/model/spec_parse.h"
#include "engine/quant/quant.h"

namespace archlens {

namespace fs = std::filesystem;

Model::~Model() = default;

namespace {

// Looks tensors up by their stored name and turns them into checked views.
class Binder {
public:
    using Find = std::function<const TensorRef*(const std::string&)>;
    Binder(Find find, std::string file, std::vector<TensorInfo>& infos) : find_(std::move(find)), file_(std::move(file)), infos_(infos) {}

    const TensorRef* get(const std::string& stored, const std::string& canonical, bool required) {
        const TensorRef* t = find_(stored);
        if (!t) {
            if (required) fail(file_, "tensor '" + stored + "' is required but not found in the file");
            return nullptr;
        }
        if (!quant::supported(t->type))
            fail(file_, "tensor '" + stored + "' has weight type " + dtype_name(t->type) + ", which this build cannot compute with");
        infos_.push_back({canonical, stored, t->type, t->shape, t->nbytes});
        return t;
    }

    void expect_shape(const TensorRef& t, const std::vector<int64_t>& shape) {
        if (t.shape != shape)
            fail(file_, "tensor '" + t.name + "' has shape " + shape_string(t.shape) + ", expected " + shape_string(shape));
    }

    Linear linear(const std::string& stored, const std::string& canonical, int64_t n_out, int64_t n_in, bool required = true) {
        Linear l;
        const TensorRef* t = get(stored, canonical, required);
        if (!t) return l;
        expect_shape(*t, {n_out, n_in});
        l.data = t->data;
        l.type = t->type;
        l.n_out = n_out;
        l.n_in = n_in;
        l.name = canonical;
        l.nbytes = t->nbytes;
        return l;
    }

    // Stored as [n_in][n_out] (x @ W): HF Conv1D.
    Linear linear_t(const std::string& stored, const std::string& canonical, int64_t n_out, int64_t n_in, bool required = true) {
        Linear l;
        const TensorRef* t = get(stored, canonical, required);
        if (!t) return l;
        expect_shape(*t, {n_in, n_out});
        if (dtype_info(t->type).quantized) fail(file_, "tensor '" + stored + "': transposed layout cannot be quantized");
        l.data = t->data;
        l.type = t->type;
        l.n_out = n_out;
        l.n_in = n_in;
        l.transposed = true;
        l.ld = n_out;
        l.name = canonical;
        l.nbytes = t->nbytes;
        return l;
    }

    std::vector<float> vec(const std::string& stored, const std::string& canonical, int64_t n, bool required = true, float add = 0.f) {
        const TensorRef* t = get(stored, canonical, required);
        if (!t) return {};
        if (t->numel() != n)
            fail(file_, "tensor '" + stored + "' has shape " + shape_string(t->shape) + ", expected [" + std::to_string(n) + "]");
        std::vector<float> v(static_cast<size_t>(n));
        quant::dequantize_row(t->type, t->data, v.data(), n);
        if (add != 0.f)
            for (auto& x : v) x += add;
        return v;
    }

    // A [E][rows][cols] stack (ggml *_exps) viewed as E plain matrices.
    std::vector<Linear> stacked(const std::string& stored, const std::string& canonical, int64_t E, int64_t n_out, int64_t n_in,
                                bool required = true) {
        const TensorRef* t = get(stored, canonical, required);
        if (!t) return {};
        expect_shape(*t, {E, n_out, n_in});
        uint64_t row = *dtype_row_bytes(t->type, uint64_t(n_in));
        std::vector<Linear> out;
        for (int64_t e = 0; e < E; ++e) {
            Linear l;
            l.data = t->data + uint64_t(e) * uint64_t(n_out) * row;
            l.type = t->type;
            l.n_out = n_out;
            l.n_in = n_in;
            l.name = canonical + "[" + std::to_string(e) + "]";
            l.nbytes = uint64_t(n_out) * row;
            out.push_back(l);
        }
        return out;
    }

    const std::string& file() const { return file_; }

private:
    Find find_;
    std::string file_;
    std::vector<TensorInfo>& infos_;
};

std::string blk(int i, const char* name) { return "blk." + std::to_string(i) + "." + name; }

}  // namespace

RopeStyle Model::rope_style(const AttentionSpec& a) const {
    if (qk_permuted_ && a.rope.style == RopeStyle::Neox) return RopeStyle::Norm;
    return a.rope.style;
}

std::map<std::string, uint64_t> Model::weight_types() const {
    std::map<std::string, uint64_t> m;
    for (auto& t : tensors_) m[dtype_name(t.type)]++;
    return m;
}

ModelSpec Model::load_spec(const std::string& path_in) {
    const std::string path = demo::resolve_model_path(path_in);
    if (auto name = catalog_ref(path)) return spec_from_hf_config_text(require_catalog_config(*name), path);
    fs::path p(path);
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
        if (!fs::exists(p / "config.json")) fail(path, "not a model folder: no config.json");
        return spec_from_hf_config_file((p / "config.json").string());
    }
    if (!fs::exists(p, ec)) fail(path, "no such file or folder");
    if (p.extension() == ".json") return spec_from_hf_config_file(path);
    GgufFile g(path);
    return spec_from_gguf(g);
}

std::unique_ptr<Model> Model::load(const std::string& path_in, const LoadOptions& opts) {
    std::unique_ptr<Model> m = load_whole(path_in);
    m->find_slices(opts);
    if (!opts.slice.empty()) m->apply_slice(opts.slice);
    for (auto& t : m->tensors_) m->weight_bytes_ += t.nbytes;
    return m;
}

void Model::find_slices(const LoadOptions& opts) {
    if (spec_.family != Family::Gemma3n) {
        if (!opts.slice.empty()) fail(path_, "--slice: MatFormer slices exist only for Gemma 3n models; this one is " + std::string(family_name(spec_.family)));
        return;
    }
    slices_ = builtin_matformer_slices(spec_);
    auto add = [&](const std::string& csv, bool required) {
        try {
            for (auto& s : parse_matformer_csv(csv)) {
                std::erase_if(slices_, [&](const MatformerSlice& o) { return o.name == s.name; });  // a file overrides
                slices_.push_back(std::move(s));
            }
        } catch (const Error& e) {
            if (required) throw;
            slicing_error_ += (slicing_error_.empty() ? "" : "; ") + std::string(e.what());
        }
    };
    if (format_ != ModelFormat::ConfigOnly || !catalog_ref(path_))
        for (auto& csv : find_matformer_csvs(path_)) add(csv, false);
    if (!opts.slicing_config.empty()) add(opts.slicing_config, true);
}

void Model::apply_slice(const std::string& name) {
    auto it = std::find_if(slices_.begin(), slices_.end(), [&](const MatformerSlice& s) { return s.name == name; });
    if (it == slices_.end()) {
        std::string known;
        for (auto& s : slices_) known += (known.empty() ? "'" : ", '") + s.name + "'";
        fail(path_, "no MatFormer slice named '" + name + "'; " +
                        (known.empty() ? std::string("this model offers none (put a slicing CSV such as google/gemma3n-slicing-configs next to it)")
                                       : "available: " + known) +
                        (slicing_error_.empty() ? "" : " (" + slicing_error_ + ")"));
    }
    // Column prefixes of a quantized down projection must end on a block boundary.
    int align = 1;
    for (auto& L : w_.layers)
        if (L.down.present()) align = std::max(align, int(dtype_info(L.down.type).block_size));
    SlicePlan plan = plan_matformer_slice(spec_, *it, path_, align);
    if (format_ != ModelFormat::ConfigOnly) {
        std::vector<LayerWeights> layers;
        for (size_t k = 0; k < plan.kept.size(); ++k) {
            LayerWeights L = w_.layers[size_t(plan.kept[k])];
            const int64_t d = plan.spec.layers[k].ffn.ffn_dim;
            for (Linear* x : {&L.gate, &L.up}) {  // the first d rows
                x->nbytes = x->nbytes / uint64_t(x->n_out) * uint64_t(d);
                x->n_out = d;
            }
            // the first d columns of every row
            L.down.row_stride = *dtype_row_bytes(L.down.type, uint64_t(L.down.n_in));
            L.down.nbytes = uint64_t(L.down.n_out) * *dtype_row_bytes(L.down.type, uint64_t(d));
            L.down.n_in = d;
            layers.push_back(std::move(L));
        }
        w_.layers = std::move(layers);
        w_.ple_layers = plan.kept;
    }
    full_spec_ = spec_;
    spec_ = std::move(plan.spec);
    kept_layers_ = std::move(plan.kept);
    slice_name_ = name;
}

std::unique_ptr<Model> Model::load_whole(const std::string& path_in) {
    const std::string path = demo::resolve_model_path(path_in);
    std::unique_ptr<Model> m(new Model);
    m->path_ = path;
    if (auto name = catalog_ref(path)) {  // architecture only: diagram, counts, KV math; no weights
        m->format_ = ModelFormat::ConfigOnly;
        m->spec_ = spec_from_hf_config_text(require_catalog_config(*name), path);
        return m;
    }
    fs::path p(path);
    std::error_code ec;
    if (!fs::exists(p, ec)) fail(path, "no such file or folder");
    if (fs::is_directory(p, ec)) {
        if (!fs::exists(p / "config.json")) fail(path, "not a model folder: no config.json");
        m->format_ = ModelFormat::Safetensors;
        m->spec_ = spec_from_hf_config_file((p / "config.json").string());
        m->st_ = std::make_unique<SafetensorsModel>(path);
        m->file_bytes_ = 0;
        for (auto& e : fs::directory_iterator(p))
            if (e.is_regular_file()) m->file_bytes_ += uint64_t(e.file_size());
        m->tokenizer_dir_ = path;
        m->bind_safetensors();
    } else if (p.extension() == ".json") {
        m->format_ = ModelFormat::ConfigOnly;
        m->spec_ = spec_from_hf_config_file(path);
        return m;
    } else {
        m->format_ = ModelFormat::GGUF;
        m->gguf_ = std::make_unique<GgufFile>(path);
        m->spec_ = spec_from_gguf(*m->gguf_);
        m->file_bytes_ = m->gguf_->file_size();
        m->qk_permuted_ = (m->gguf_->get_string("general.architecture").value_or("") == "llama");
        m->bind_gguf();
    }
    return m;
}

void Model::bind_gguf() {
    const ModelSpec& s = spec_;
    Binder b([this](const std::string& n) { return gguf_->tensor(n); }, gguf_->path(), tensors_);
    const int64_t D = s.dim;
    w_.tok_embd = b.linear("token_embd.weight", "token_embd", s.vocab, D);
    if (s.learned_positions) w_.pos_embd = b.linear("position_embd.weight", "position_embd", s.max_positions, D);
    w_.out_norm = b.vec("output_norm.weight", "output_norm", D);
    if (s.norm_bias) w_.out_norm_b = b.vec("output_norm.bias", "output_norm.bias", D);
    w_.lm_head = s.tied_embeddings ? w_.tok_embd : b.linear("output.weight", "output", s.vocab, D);
    if (s.family == Family::Gemma3n) {
        const int64_t LP = int64_t(s.n_layers) * s.ple_dim, n = s.altup_inputs;
        w_.ple_table = b.linear("per_layer_token_embd.weight", "per_layer_token_embd", s.ple_vocab, LP);
        w_.ple_model_proj = b.linear("per_layer_model_proj.weight", "per_layer_model_proj", LP, D);
        w_.ple_proj_norm = b.vec("per_layer_proj_norm.weight", "per_layer_proj_norm", s.ple_dim);
        w_.altup_proj = b.stacked("altup_proj.weight", "altup_proj", n - 1, D, D);
        w_.altup_unembd = b.stacked("altup_unembd_proj.weight", "altup_unembd_proj", n - 1, D, D);
    }
    if (gguf_->tensor("rope_freqs.weight"))
        w_.rope_freq_factors = b.vec("rope_freqs.weight", "rope_freqs", s.layers[0].attn.rope.n_rot / 2);
    for (int i = 0; i < s.n_layers; ++i) {
        const LayerSpec& ls = s.layers[size_t(i)];
        const AttentionSpec& a = ls.attn;
        LayerWeights L;
        auto n = [&](const char* x) { return blk(i, x); };
        if (ls.attn_pre_norm) L.attn_norm = b.vec(n("attn_norm.weight"), n("attn_norm"), D);
        if (ls.attn_pre_norm && s.norm_bias) L.attn_norm_b = b.vec(n("attn_norm.bias"), n("attn_norm.bias"), D);
        if (ls.attn_post_norm) L.post_attn_norm = b.vec(n("post_attention_norm.weight"), n("post_attention_norm"), D);
        if (ls.ffn_pre_norm) L.ffn_norm = b.vec(n("ffn_norm.weight"), n("ffn_norm"), D);
        if (ls.ffn_pre_norm && s.norm_bias) L.ffn_norm_b = b.vec(n("ffn_norm.bias"), n("ffn_norm.bias"), D);
        if (ls.ffn_post_norm) L.post_ffn_norm = b.vec(n("post_ffw_norm.weight"), n("post_ffw_norm"), D);
        if (s.family == Family::Gemma3n) {
            const int64_t P = s.ple_dim, N = s.altup_inputs, R = s.laurel_rank;
            L.ple_gate = b.linear(n("inp_gate.weight"), n("inp_gate"), P, D);
            L.ple_proj = b.linear(n("proj.weight"), n("proj"), D, P);
            L.ple_post_norm = b.vec(n("post_norm.weight"), n("post_norm"), D);
            L.altup_correct = b.linear(n("altup_correct_coef.weight"), n("altup_correct_coef"), N, N);
            L.altup_correct_scale = b.vec(n("altup_correct_scale.weight"), n("altup_correct_scale"), D);
            L.altup_predict = b.linear(n("altup_predict_coef.weight"), n("altup_predict_coef"), N * N, N);
            L.altup_router = b.linear(n("altup_router.weight"), n("altup_router"), N, D);
            L.altup_router_norm = b.vec(n("altup_router_norm.weight"), n("altup_router_norm"), D);
            L.laurel_l = b.linear(n("laurel_l.weight"), n("laurel_l"), R, D);
            L.laurel_r = b.linear(n("laurel_r.weight"), n("laurel_r"), D, R);
            L.laurel_post_norm = b.vec(n("laurel_post_norm.weight"), n("laurel_post_norm"), D);
        }
        const bool own_kv = ls.kv_source < 0;
        const int64_t q_dim = int64_t(a.n_heads) * a.head_dim, kv_dim = int64_t(a.n_kv_heads) * a.head_dim,
                      v_dim = int64_t(a.n_kv_heads) * a.v_head_dim;
        if (a.kind == AttnKind::MLA) {
            const int64_t H = a.n_heads, R = a.kv_lora_rank;
            if (a.q_lora_rank) {
                L.q_a = b.linear(n("attn_q_a.weight"), n("attn_q_a"), a.q_lora_rank, D);
                L.q_a_norm = b.vec(n("attn_q_a_norm.weight"), n("attn_q_a_norm"), a.q_lora_rank);
                L.q_b = b.linear(n("attn_q_b.weight"), n("attn_q_b"), q_dim, a.q_lora_rank);
            } else {
                L.q = b.linear(n("attn_q.weight"), n("attn_q"), q_dim, D);
            }
            L.kv_a = b.linear(n("attn_kv_a_mqa.weight"), n("attn_kv_a_mqa"), R + a.qk_rope_head_dim, D);
            L.kv_a_norm = b.vec(n("attn_kv_a_norm.weight"), n("attn_kv_a_norm"), R);
            // ref: convert_hf_to_gguf DeepseekV2: k_b = kv_b's k part per head, transposed -> [H][R][nope]
            L.k_absorb = b.stacked(n("attn_k_b.weight"), n("attn_k_b"), H, R, a.qk_nope_head_dim);
            L.v_expand = b.stacked(n("attn_v_b.weight"), n("attn_v_b"), H, a.v_head_dim, R);
            L.o = b.linear(n("attn_output.weight"), n("attn_output"), D, H * a.v_head_dim);
        } else if (s.family == Family::GPT2) {
            L.qkv = b.linear(n("attn_qkv.weight"), n("attn_qkv"), q_dim + kv_dim + v_dim, D);
            L.qkv.bias = b.vec(n("attn_qkv.bias"), n("attn_qkv.bias"), q_dim + kv_dim + v_dim);
            L.o = b.linear(n("attn_output.weight"), n("attn_output"), D, q_dim);
            L.o.bias = b.vec(n("attn_output.bias"), n("attn_output.bias"), D);
        } else {
            L.q = b.linear(n("attn_q.weight"), n("attn_q"), q_dim, D);
            L.k = b.linear(n("attn_k.weight"), n("attn_k"), kv_dim, D, own_kv);
            L.v = b.linear(n("attn_v.weight"), n("attn_v"), v_dim, D, own_kv);
            L.o = b.linear(n("attn_output.weight"), n("attn_output"), D, int64_t(a.n_heads) * a.v_head_dim);
            if (a.qkv_bias) {
                L.q.bias = b.vec(n("attn_q.bias"), n("attn_q.bias"), q_dim);
                L.k.bias = b.vec(n("attn_k.bias"), n("attn_k.bias"), kv_dim);
                L.v.bias = b.vec(n("attn_v.bias"), n("attn_v.bias"), v_dim);
            }
            if (a.o_bias) L.o.bias = b.vec(n("attn_output.bias"), n("attn_output.bias"), D);
        }
        if (a.qk_norm == QkNorm::PerHead) {
            L.q_norm = b.vec(n("attn_q_norm.weight"), n("attn_q_norm"), a.head_dim);
            L.k_norm = b.vec(n("attn_k_norm.weight"), n("attn_k_norm"), a.head_dim);
        } else if (a.qk_norm == QkNorm::Full) {
            L.q_norm = b.vec(n("attn_q_norm.weight"), n("attn_q_norm"), q_dim);
            L.k_norm = b.vec(n("attn_k_norm.weight"), n("attn_k_norm"), kv_dim);
        }
        const FfnSpec& f = ls.ffn;
        if (!f.moe) {
            if (f.gated) L.gate = b.linear(n("ffn_gate.weight"), n("ffn_gate"), f.ffn_dim, D);
            L.up = b.linear(n("ffn_up.weight"), n("ffn_up"), f.ffn_dim, D);
            L.down = b.linear(n("ffn_down.weight"), n("ffn_down"), D, f.ffn_dim);
            if (f.bias) {
                L.up.bias = b.vec(n("ffn_up.bias"), n("ffn_up.bias"), f.ffn_dim);
                L.down.bias = b.vec(n("ffn_down.bias"), n("ffn_down.bias"), D);
            }
        } else {
            const int64_t E = f.n_experts, F = f.expert_ffn_dim;
            L.router = b.linear(n("ffn_gate_inp.weight"), n("ffn_gate_inp"), E, D);
            if (f.selection_bias) L.selection_bias = b.vec(n("exp_probs_b.bias"), n("exp_probs_b"), E);
            auto g = b.stacked(n("ffn_gate_exps.weight"), n("ffn_gate_exps"), E, F, D);
            auto u = b.stacked(n("ffn_up_exps.weight"), n("ffn_up_exps"), E, F, D);
            auto d = b.stacked(n("ffn_down_exps.weight"), n("ffn_down_exps"), E, D, F);
            for (int64_t e = 0; e < E; ++e) L.experts.push_back({g[size_t(e)], u[size_t(e)], d[size_t(e)]});
            if (f.n_shared) {
                L.shared.gate = b.linear(n("ffn_gate_shexp.weight"), n("ffn_gate_shexp"), f.shared_ffn_dim, D);
                L.shared.up = b.linear(n("ffn_up_shexp.weight"), n("ffn_up_shexp"), f.shared_ffn_dim, D);
                L.shared.down = b.linear(n("ffn_down_shexp.weight"), n("ffn_down_shexp"), D, f.shared_ffn_dim);
            }
        }
        w_.layers.push_back(std::move(L));
    }
}

void Model::bind_safetensors() {
    const ModelSpec& s = spec_;
    Binder b([this](const std::string& n) { return st_->tensor(n); }, path_, tensors_);
    const int64_t D = s.dim;
    // ref: HF Gemma3RMSNorm computes x̂·(1+w): the file holds w.
    const float norm_add = s.family == Family::Gemma3 ? 1.f : 0.f;

    if (s.family == Family::GPT2) {
        std::string pre = st_->tensor("transformer.wte.weight") ? "transformer." : "";
        w_.tok_embd = b.linear(pre + "wte.weight", "token_embd", s.vocab, D);
        w_.pos_embd = b.linear(pre + "wpe.weight", "position_embd", s.max_positions, D);
        w_.out_norm = b.vec(pre + "ln_f.weight", "output_norm", D);
        w_.out_norm_b = b.vec(pre + "ln_f.bias", "output_norm.bias", D);
        w_.lm_head = w_.tok_embd;
        for (int i = 0; i < s.n_layers; ++i) {
            const FfnSpec& f = s.layers[size_t(i)].ffn;
            LayerWeights L;
            std::string h = pre + "h." + std::to_string(i) + ".";
            auto n = [&](const char* x) { return blk(i, x); };
            L.attn_norm = b.vec(h + "ln_1.weight", n("attn_norm"), D);
            L.attn_norm_b = b.vec(h + "ln_1.bias", n("attn_norm.bias"), D);
            // ref: HF GPT-2 Conv1D stores [in, out]
            L.qkv = b.linear_t(h + "attn.c_attn.weight", n("attn_qkv"), 3 * D, D);
            L.qkv.bias = b.vec(h + "attn.c_attn.bias", n("attn_qkv.bias"), 3 * D);
            L.o = b.linear_t(h + "attn.c_proj.weight", n("attn_output"), D, D);
            L.o.bias = b.vec(h + "attn.c_proj.bias", n("attn_output.bias"), D);
            L.ffn_norm = b.vec(h + "ln_2.weight", n("ffn_norm"), D);
            L.ffn_norm_b = b.vec(h + "ln_2.bias", n("ffn_norm.bias"), D);
            L.up = b.linear_t(h + "mlp.c_fc.weight", n("ffn_up"), f.ffn_dim, D);
            L.up.bias = b.vec(h + "mlp.c_fc.bias", n("ffn_up.bias"), f.ffn_dim);
            L.down = b.linear_t(h + "mlp.c_proj.weight", n("ffn_down"), D, f.ffn_dim);
            L.down.bias = b.vec(h + "mlp.c_proj.bias", n("ffn_down.bias"), D);
            w_.layers.push_back(std::move(L));
        }
        return;
    }

    w_.tok_embd = b.linear("model.embed_tokens.weight", "token_embd", s.vocab, D);
    w_.out_norm = b.vec("model.norm.weight", "output_norm", D, true, norm_add);
    if (s.family == Family::Gemma3n) {
        const int64_t LP = int64_t(s.n_layers) * s.ple_dim;
        w_.ple_table = b.linear("model.embed_tokens_per_layer.weight", "per_layer_token_embd", s.ple_vocab, LP);
        w_.ple_model_proj = b.linear("model.per_layer_model_projection.weight", "per_layer_model_proj", LP, D);
        w_.ple_proj_norm = b.vec("model.per_layer_projection_norm.weight", "per_layer_proj_norm", s.ple_dim);
        for (int k = 0; k + 1 < s.altup_inputs; ++k) {
            w_.altup_proj.push_back(b.linear("model.altup_projections." + std::to_string(k) + ".weight", "altup_proj[" + std::to_string(k) + "]", D, D));
            w_.altup_unembd.push_back(
                b.linear("model.altup_unembed_projections." + std::to_string(k) + ".weight", "altup_unembd_proj[" + std::to_string(k) + "]", D, D));
        }
    }
    if (s.tied_embeddings || !st_->tensor("lm_head.weight"))
        w_.lm_head = w_.tok_embd;
    else
        w_.lm_head = b.linear("lm_head.weight", "output", s.vocab, D);

    for (int i = 0; i < s.n_layers; ++i) {
        const LayerSpec& ls = s.layers[size_t(i)];
        const AttentionSpec& a = ls.attn;
        const FfnSpec& f = ls.ffn;
        LayerWeights L;
        std::string h = "model.layers." + std::to_string(i) + ".";
        auto n = [&](const char* x) { return blk(i, x); };
        const bool llama4 = s.family == Family::Llama4;
        const std::string mlp = llama4 ? h + "feed_forward." : h + "mlp.";

        if (ls.attn_pre_norm) L.attn_norm = b.vec(h + "input_layernorm.weight", n("attn_norm"), D, true, norm_add);
        // HF names by placement: Llama's post_attention_layernorm is the pre-FFN norm; OLMo 2's
        // and Gemma 3's is the post-attention norm (Gemma 3 has pre_feedforward_layernorm).
        if (ls.attn_post_norm) L.post_attn_norm = b.vec(h + "post_attention_layernorm.weight", n("post_attention_norm"), D, true, norm_add);
        if (ls.ffn_pre_norm)
            L.ffn_norm = b.vec(h + (ls.attn_post_norm ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight"),
                               n("ffn_norm"), D, true, norm_add);
        if (ls.ffn_post_norm) L.post_ffn_norm = b.vec(h + "post_feedforward_layernorm.weight", n("post_ffw_norm"), D, true, norm_add);
        if (s.family == Family::Gemma3n) {
            const int64_t P = s.ple_dim, N = s.altup_inputs, R = s.laurel_rank;
            L.ple_gate = b.linear(h + "per_layer_input_gate.weight", n("inp_gate"), P, D);
            L.ple_proj = b.linear(h + "per_layer_projection.weight", n("proj"), D, P);
            L.ple_post_norm = b.vec(h + "post_per_layer_input_norm.weight", n("post_norm"), D);
            L.altup_correct = b.linear(h + "altup.correction_coefs.weight", n("altup_correct_coef"), N, N);
            L.altup_correct_scale = b.vec(h + "altup.correct_output_scale", n("altup_correct_scale"), D);
            L.altup_predict = b.linear(h + "altup.prediction_coefs.weight", n("altup_predict_coef"), N * N, N);
            L.altup_router = b.linear(h + "altup.modality_router.weight", n("altup_router"), N, D);
            L.altup_router_norm = b.vec(h + "altup.router_norm.weight", n("altup_router_norm"), D);
            L.laurel_l = b.linear(h + "laurel.linear_left.weight", n("laurel_l"), R, D);
            L.laurel_r = b.linear(h + "laurel.linear_right.weight", n("laurel_r"), D, R);
            L.laurel_post_norm = b.vec(h + "laurel.post_laurel_norm.weight", n("laurel_post_norm"), D);
        }
        const bool own_kv = ls.kv_source < 0;

        const int64_t q_dim = int64_t(a.n_heads) * a.head_dim, kv_dim = int64_t(a.n_kv_heads) * a.head_dim,
                      v_dim = int64_t(a.n_kv_heads) * a.v_head_dim;
        const std::string at = h + "self_attn.";
        if (a.kind == AttnKind::MLA) {
            const int64_t H = a.n_heads, R = a.kv_lora_rank, NP = a.qk_nope_head_dim, V = a.v_head_dim;
            if (a.q_lora_rank) {
                L.q_a = b.linear(at + "q_a_proj.weight", n("attn_q_a"), a.q_lora_rank, D);
                L.q_a_norm = b.vec(at + "q_a_layernorm.weight", n("attn_q_a_norm"), a.q_lora_rank);
                L.q_b = b.linear(at + "q_b_proj.weight", n("attn_q_b"), q_dim, a.q_lora_rank);
            } else {
                L.q = b.linear(at + "q_proj.weight", n("attn_q"), q_dim, D);
            }
            L.kv_a = b.linear(at + "kv_a_proj_with_mqa.weight", n("attn_kv_a_mqa"), R + a.qk_rope_head_dim, D);
            L.kv_a_norm = b.vec(at + "kv_a_layernorm.weight", n("attn_kv_a_norm"), R);
            Linear kvb = b.linear(at + "kv_b_proj.weight", n("attn_kv_b"), H * (NP + V), R);
            if (dtype_info(kvb.type).quantized) fail(path_, "kv_b_proj cannot be quantized");
            const uint64_t row = *dtype_row_bytes(kvb.type, uint64_t(R));
            for (int64_t hh = 0; hh < H; ++hh) {
                // k part of head hh: rows [hh*(NP+V), +NP) of (.., R): used transposed, nope -> R.
                Linear kb;
                kb.data = kvb.data + uint64_t(hh * (NP + V)) * row;
                kb.type = kvb.type;
                kb.n_in = NP;
                kb.n_out = R;
                kb.transposed = true;
                kb.ld = R;
                kb.name = kvb.name + ".k[" + std::to_string(hh) + "]";
                L.k_absorb.push_back(kb);
                Linear vb;
                vb.data = kvb.data + uint64_t(hh * (NP + V) + NP) * row;
                vb.type = kvb.type;
                vb.n_in = R;
                vb.n_out = V;
                vb.name = kvb.name + ".v[" + std::to_string(hh) + "]";
                L.v_expand.push_back(vb);
            }
            L.o = b.linear(at + "o_proj.weight", n("attn_output"), D, H * V);
        } else {
            L.q = b.linear(at + "q_proj.weight", n("attn_q"), q_dim, D);
            L.k = b.linear(at + "k_proj.weight", n("attn_k"), kv_dim, D, own_kv);
            L.v = b.linear(at + "v_proj.weight", n("attn_v"), v_dim, D, own_kv);
            L.o = b.linear(at + "o_proj.weight", n("attn_output"), D, int64_t(a.n_heads) * a.v_head_dim);
            if (a.qkv_bias) {
                L.q.bias = b.vec(at + "q_proj.bias", n("attn_q.bias"), q_dim);
                L.k.bias = b.vec(at + "k_proj.bias", n("attn_k.bias"), kv_dim);
                L.v.bias = b.vec(at + "v_proj.bias", n("attn_v.bias"), v_dim);
            }
            if (a.o_bias) L.o.bias = b.vec(at + "o_proj.bias", n("attn_output.bias"), D);
        }
        if (a.qk_norm == QkNorm::PerHead) {
            L.q_norm = b.vec(at + "q_norm.weight", n("attn_q_norm"), a.head_dim, true, norm_add);
            L.k_norm = b.vec(at + "k_norm.weight", n("attn_k_norm"), a.head_dim, true, norm_add);
        } else if (a.qk_norm == QkNorm::Full) {
            L.q_norm = b.vec(at + "q_norm.weight", n("attn_q_norm"), q_dim);
            L.k_norm = b.vec(at + "k_norm.weight", n("attn_k_norm"), kv_dim);
        }

        if (!f.moe) {
            L.gate = b.linear(mlp + "gate_proj.weight", n("ffn_gate"), f.ffn_dim, D);
            L.up = b.linear(mlp + "up_proj.weight", n("ffn_up"), f.ffn_dim, D);
            L.down = b.linear(mlp + "down_proj.weight", n("ffn_down"), D, f.ffn_dim);
        } else {
            const int64_t E = f.n_experts, F = f.expert_ffn_dim;
            L.router = b.linear(mlp + (llama4 ? "router.weight" : "gate.weight"), n("ffn_gate_inp"), E, D);
            if (f.selection_bias) L.selection_bias = b.vec(mlp + "gate.e_score_correction_bias", n("exp_probs_b"), E);
            if (llama4) {
                // ref: HF Llama4TextExperts: gate_up_proj [E, D, 2F] (gate half first), down_proj [E, F, D], x @ W
                const TensorRef* gu = b.get(mlp + "experts.gate_up_proj", n("ffn_gate_up_exps"), true);
                const TensorRef* dn = b.get(mlp + "experts.down_proj", n("ffn_down_exps"), true);
                b.expect_shape(*gu, {E, D, 2 * F});
                b.expect_shape(*dn, {E, F, D});
                if (dtype_info(gu->type).quantized || dtype_info(dn->type).quantized)
                    fail(path_, "Llama 4 fused expert tensors cannot be quantized");
                const uint64_t es = uint64_t(dtype_info(gu->type).type_size), ed = uint64_t(dtype_info(dn->type).type_size);
                for (int64_t e = 0; e < E; ++e) {
                    Expert x;
                    auto mk = [&](const uint8_t* p, DType t, int64_t n_out, int64_t n_in, int64_t ld, const std::string& nm) {
                        Linear l;
                        l.data = p;
                        l.type = t;
                        l.n_out = n_out;
                        l.n_in = n_in;
                        l.transposed = true;
                        l.ld = ld;
                        l.name = nm + "[" + std::to_string(e) + "]";
                        return l;
                    };
                    const uint8_t* base = gu->data + uint64_t(e) * uint64_t(D * 2 * F) * es;
                    x.gate = mk(base, gu->type, F, D, 2 * F, n("ffn_gate_exps"));
                    x.up = mk(base + uint64_t(F) * es, gu->type, F, D, 2 * F, n("ffn_up_exps"));
                    x.down = mk(dn->data + uint64_t(e) * uint64_t(F * D) * ed, dn->type, D, F, D, n("ffn_down_exps"));
                    L.experts.push_back(x);
                }
            } else {
                for (int64_t e = 0; e < E; ++e) {
                    std::string ex = mlp + "experts." + std::to_string(e) + ".";
                    std::string cn = n("ffn_exps") + "[" + std::to_string(e) + "]";
                    L.experts.push_back({b.linear(ex + "gate_proj.weight", cn + ".gate", F, D),
                                         b.linear(ex + "up_proj.weight", cn + ".up", F, D),
                                         b.linear(ex + "down_proj.weight", cn + ".down", D, F)});
                }
            }
            if (f.n_shared) {
                std::string sh = mlp + (llama4 ? "shared_expert." : "shared_experts.");
                L.shared.gate = b.linear(sh + "gate_proj.weight", n("ffn_gate_shexp"), f.shared_ffn_dim, D);
                L.shared.up = b.linear(sh + "up_proj.weight", n("ffn_up_shexp"), f.shared_ffn_dim, D);
                L.shared.down = b.linear(sh + "down_proj.weight", n("ffn_down_shexp"), D, f.shared_ffn_dim);
            }
        }
        w_.layers.push_back(std::move(L));
    }
}

}  // namespace archlens
