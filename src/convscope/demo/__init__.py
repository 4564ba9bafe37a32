"""convscope.demo"""
